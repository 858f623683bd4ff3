"""``python -m bench event-spool``: CPU per request event of ingress's event path, with the
crash-safe spool and without, in one process (no broker: recording, spooling and batching only).

The end-to-end figure (``python -m bench predict --event-spool compare``) moves by more than this
cost between two runs on a shared machine; this isolates it. Reports the best of ``--repeat``
alternated rounds of ``--events`` events each, in CPU microseconds per event.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec

from ingress.events import EventPublisher, EventSpool
from schemas.messages import RequestEvent, utc_from_epoch

# A request event as ingress records it for a logged iris prediction (about 600 bytes of JSON).
EVENT: dict[str, Any] = {
    "event_id": "ed2d43214ea4c00b6420000000000123",
    "api_id": "bench-1",
    "model_version": "m-bench-1-v1",
    "status_code": 200,
    "error_code": "",
    "ingress_id": "bench-ingress",
    "authenticated": True,
    "key_prefix": "mg_abcde",
    "request_bytes": 80,
    "worker_id": "bench-predictor-1",
    "worker_rss_mb": 288.0,
    "queue_ms": 0.4,
    "inference_ms": 1.2,
    "batch_size": 12,
    "rows": 1,
    "cpu_ms": 0.1,
    "prediction": "setosa",
    "total_ms": 40.1,
    "response_bytes": 120,
    "input": '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}',
    "output": '{"prediction":"setosa","probabilities":{"setosa":0.97,"versicolor":0.03,'
    '"virginica":0.0},"request_id":"ed2d43214ea4c00b6420000000000123",'
    '"model_version":"m-bench-1-v1"}',
}

TEMPLATE = msgspec.convert({**EVENT, "ts": utc_from_epoch(0)}, RequestEvent)


def one_round(events: int, spool_dir: Path | None) -> float:
    """CPU microseconds per event: record each, then form every batch and note its confirm."""
    publisher = EventPublisher(
        "bench",
        flush_max=500,
        buffer_max=events + 1,
        spool=EventSpool(spool_dir) if spool_dir else None,
    )
    publisher.open_spool()
    started = time.process_time()
    for _ in range(events):
        publisher.record(msgspec.structs.replace(TEMPLATE, ts=utc_from_epoch(time.time())))
    while publisher.depth:
        _, _, _, end = publisher._next_batch()
        if publisher.spool is not None:
            publisher.spool.note_confirmed(end)
    used = time.process_time() - started
    publisher.close_spool()
    return used / events * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench event-spool", description=__doc__)
    parser.add_argument("--events", type=int, default=20_000, help="events per round")
    parser.add_argument("--repeat", type=int, default=8, help="rounds per mode (alternated)")
    args = parser.parse_args(argv)
    best = {"off": float("inf"), "on": float("inf")}
    with tempfile.TemporaryDirectory(prefix="modelgate-spool-") as tmp:
        for n in range(args.repeat):
            best["off"] = min(best["off"], one_round(args.events, None))
            best["on"] = min(best["on"], one_round(args.events, Path(tmp) / f"spool-{n}"))
    print(
        f"event path, CPU per event (best of {args.repeat} x {args.events}): "
        f"spool off {best['off']:.1f} us, spool on {best['on']:.1f} us, "
        f"cost of the spool {best['on'] - best['off']:.1f} us"
    )
    return 0
