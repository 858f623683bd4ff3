"""``modelgate predictor``: run one prediction worker until SIGTERM / SIGINT."""

from __future__ import annotations

from infra.service import configure_logging, parse_service_args, run_until_signalled, tune_gc
from predictor.settings import PredictorSettings
from predictor.worker import Worker


def main(argv: list[str] | None = None) -> int:
    parse_service_args(
        "modelgate predictor", "Answer PredictBatch RPCs from the model store.", argv
    )
    settings = PredictorSettings()
    configure_logging(settings.log_level, settings.predictor_id)
    tune_gc(settings.gc_gen0_threshold)
    run_until_signalled(Worker(settings).run)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
