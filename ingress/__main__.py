"""``modelgate ingress``: serve the prediction APIs on uvloop until SIGTERM / SIGINT."""

from __future__ import annotations

from infra import http
from infra.service import configure_logging, parse_service_args, tune_gc
from ingress.app import create_app
from ingress.settings import IngressSettings


def main(argv: list[str] | None = None) -> int:
    parse_service_args("modelgate ingress", "Serve the prediction APIs.", argv)
    settings = IngressSettings()
    configure_logging(settings.log_level, settings.ingress_id)
    tune_gc(settings.gc_gen0_threshold)
    http.run_app(
        create_app(settings),
        settings.ingress_host,
        settings.ingress_port,
        settings,
        reuse_port=settings.ingress_reuse_port,
        unix_socket=settings.ingress_admin_socket,
        shutdown_timeout=10.0,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
