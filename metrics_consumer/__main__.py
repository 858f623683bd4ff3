"""``modelgate metrics-consumer``: run one consumer until SIGTERM or Ctrl-C."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

from metrics_consumer.settings import ConsumerSettings
from metrics_consumer.worker import Worker


async def serve(settings: ConsumerSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Worker(settings).run(stop)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="modelgate metrics-consumer",
        description="Stream request events and worker samples from RabbitMQ into ClickHouse "
        "(settings from MODELGATE_* environment variables).",
    )
    parser.parse_args(argv or [])
    settings = ConsumerSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    asyncio.run(serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
