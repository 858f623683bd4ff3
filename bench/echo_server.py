"""The ceiling of one Python HTTP process here: aiohttp on uvloop echoing a JSON body with orjson.

``python -m bench.echo_server --port 8099`` serves ``POST /echo`` until killed.
"""

from __future__ import annotations

import argparse

import orjson
import uvloop
from aiohttp import web


async def echo(request: web.Request) -> web.Response:
    payload = orjson.loads(await request.read())
    return web.Response(body=orjson.dumps(payload), headers={"Content-Type": "application/json"})


def create_app() -> web.Application:
    app = web.Application()
    app.router.add_post("/echo", echo)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.echo_server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099)
    args = parser.parse_args(argv)
    web.run_app(
        create_app(),
        host=args.host,
        port=args.port,
        access_log=None,
        print=None,
        loop=uvloop.new_event_loop(),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
