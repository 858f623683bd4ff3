"""``modelgate management-api``: run the management REST API and the dashboard."""

from __future__ import annotations

import argparse

from infra import http
from infra.service import configure_logging, tune_gc
from management_api.app import create_app
from management_api.settings import ManagementSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="modelgate management-api", description=__doc__)
    parser.add_argument("--host", help="interface to bind (MODELGATE_MANAGEMENT_HOST)")
    parser.add_argument("--port", type=int, help="port (MODELGATE_MANAGEMENT_PORT)")
    args = parser.parse_args(argv)
    settings = ManagementSettings()
    if args.host:
        settings.management_host = args.host
    if args.port:
        settings.management_port = args.port
    configure_logging(settings.log_level)
    tune_gc(settings.gc_gen0_threshold)
    http.run_app(create_app(settings), settings.management_host, settings.management_port, settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
