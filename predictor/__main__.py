"""``modelgate predictor``: run one prediction worker until SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import logging
import signal

import uvloop

from predictor.settings import PredictorSettings
from predictor.worker import Worker


async def _serve(settings: PredictorSettings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await Worker(settings).run(stop)


def main(argv: list[str] | None = None) -> int:
    settings = PredictorSettings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format=f"%(asctime)s %(levelname)s {settings.predictor_id} %(name)s: %(message)s",
    )
    uvloop.run(_serve(settings))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
