"""``modelgate ingress``: serve the prediction APIs on uvloop until SIGTERM / SIGINT."""

from __future__ import annotations

import uvloop
from aiohttp import web

from infra.service import configure_logging, parse_service_args
from ingress.app import create_app
from ingress.settings import IngressSettings


def main(argv: list[str] | None = None) -> int:
    parse_service_args("modelgate ingress", "Serve the prediction APIs.", argv)
    settings = IngressSettings()
    configure_logging(settings.log_level, settings.ingress_id)
    loop = uvloop.new_event_loop()
    web.run_app(
        create_app(settings),
        host=settings.ingress_host,
        port=settings.ingress_port,
        access_log=None,
        print=None,
        loop=loop,
        shutdown_timeout=10.0,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
