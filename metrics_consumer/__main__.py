"""``modelgate metrics-consumer``: run one consumer until SIGTERM or Ctrl-C."""

from __future__ import annotations

from infra.service import configure_logging, parse_service_args, run_until_signalled, tune_gc
from metrics_consumer.settings import ConsumerSettings
from metrics_consumer.worker import Worker


def main(argv: list[str] | None = None) -> int:
    parse_service_args(
        "modelgate metrics-consumer",
        "Stream request events and worker samples from RabbitMQ into ClickHouse.",
        argv,
    )
    settings = ConsumerSettings()
    configure_logging(settings.log_level)
    tune_gc(settings.gc_gen0_threshold)
    run_until_signalled(Worker(settings).run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
