"""What every service's ``__main__`` does the same way: arguments, logging, signals, uvloop."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import signal
from collections.abc import Awaitable, Callable

import uvloop


def parse_service_args(prog: str, description: str, argv: list[str] | None) -> None:
    """Services take their settings from ``MODELGATE_*`` variables; this gives them ``--help``."""
    parser = argparse.ArgumentParser(
        prog=prog, description=f"{description} Settings come from MODELGATE_* variables."
    )
    parser.parse_args(argv or [])


def configure_logging(level: str, tag: str = "") -> None:
    """One log format for every service; ``tag`` names the process (worker or ingress id)."""
    tag = f" {tag}" if tag else ""
    logging.basicConfig(
        level=level.upper(), format=f"%(asctime)s %(levelname)s{tag} %(name)s: %(message)s"
    )


def tune_gc(gen0_threshold: int) -> None:
    """Fewer, cheaper garbage collections for a long-running service.

    What exists now (modules, classes, settings: what the service keeps until it stops) is frozen
    out of every later collection, and the young generation is collected every
    ``gen0_threshold`` allocations instead of 700 (0 keeps Python's thresholds). Older
    generations keep their ratios (each after 20 and 10 collections of the one below), so
    garbage in reference cycles is still reclaimed, only in larger, rarer steps.
    """
    gc.collect()  # garbage is not frozen with the rest
    gc.freeze()
    if gen0_threshold > 0:
        gc.set_threshold(gen0_threshold, 20, 10)


def run_until_signalled(run: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``run(stop)`` on uvloop; SIGTERM or SIGINT sets ``stop`` so it can finish cleanly."""

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run(stop)

    uvloop.run(serve())
