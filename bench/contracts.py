"""CPU cost of building and reading the wire messages on the hot paths, in one process.

- ingress, per request: build its ``RequestEvent`` and encode it (``EventPublisher.record``'s
  encoding);
- ingress, per batch: encode a 64-row ``PredictBatch`` and decode its 64-row ``PredictResult``;
- predictor, per batch: encode the 64-row reply;
- metrics-consumer, per message: decode a 2,000-event ``RequestEventBatch`` into columns.

Run it against two trees to compare (the same script reads both the hand-built dicts of before
the msgspec contracts and the structs after)::

    PYTHONPATH=<old tree> .venv/bin/python bench/contracts.py
    .venv/bin/python bench/contracts.py
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import orjson

from ingress.events import batch_body, encode_event
from metrics_consumer.decoding import decode_event_batch
from schemas import messages

STRUCTS = hasattr(messages, "encode")
ROWS = [[5.1, 3.5, 1.4, 0.2]] * 64
NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
PROBS = {"setosa": 0.97, "versicolor": 0.02, "virginica": 0.01}
PAYLOAD = '{"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}'


def build_event(n: int) -> bytes:
    """As ingress's PredictionService does for a served, logged request."""
    now = time.time()
    if STRUCTS:
        event = messages.RequestEvent(
            event_id=f"{n:032x}",
            ts=messages.utc_from_epoch(now),
            api_id="iris",
            status_code=200,
            ingress_id="ingress-1",
            authenticated=False,
        )
        event.version_key = "iris-v1"
        event.key_prefix = "mg_abc"
        event.authenticated = True
        event.request_bytes = 90
        event.worker_id = "w1"
        event.worker_rss_mb = 180.0
        event.queue_ms = 0.4
        event.inference_ms = 1.2
        event.batch_size = 64
        event.rows = 1
        event.cpu_ms = 0.02
        event.prediction = "setosa"
        event.total_ms = 2.5
        event.response_bytes = 120
        event.input = PAYLOAD
        event.output = PAYLOAD
        return encode_event(event)
    old: dict[str, Any] = {
        "event_id": f"{n:032x}",
        "ts": now,
        "api_id": "iris",
        "model_version": "",
        "status_code": 200,
        "error_code": "",
        "ingress_id": "ingress-1",
        "authenticated": False,
    }
    old["model_version"] = "iris-v1"
    old["key_prefix"] = "mg_abc"
    old["authenticated"] = True
    old["request_bytes"] = 90
    old["worker_id"] = "w1"
    old["worker_rss_mb"] = 180.0
    old["queue_ms"] = 0.4
    old["inference_ms"] = 1.2
    old["batch_size"] = 64
    old["rows"] = 1
    old["cpu_ms"] = 0.02
    old["prediction"] = "setosa"
    old["total_ms"] = 2.5
    old["response_bytes"] = 120
    old["input"] = PAYLOAD
    old["output"] = PAYLOAD
    return encode_event(old)  # type: ignore[arg-type]


def build_batch() -> bytes:
    now = time.time()
    if STRUCTS:
        return messages.encode(
            messages.PredictBatch(
                batch_id="b" * 32,
                version_key="iris-v1",
                task=messages.Task.CLASSIFICATION,
                feature_names=NAMES,
                rows=ROWS,
                want_probabilities=True,
                sent_at=now,
                deadline=now + 5,
            )
        )
    return orjson.dumps(
        {
            "schema_version": 1,
            "batch_id": "b" * 32,
            "model_version": "iris-v1",
            "task": "classification",
            "feature_names": NAMES,
            "rows": ROWS,
            "want_probabilities": True,
            "sent_at": now,
            "deadline": now + 5,
        }
    )


def build_reply() -> bytes:
    """As the predictor replies to a 64-row classifier batch."""
    if STRUCTS:
        results = [messages.RowResult(prediction="setosa", probabilities=PROBS) for _ in ROWS]
        return messages.encode(
            messages.PredictResult(
                batch_id="b" * 32,
                version_key="iris-v1",
                worker_id="w1",
                results=results,
                queue_ms=0.4,
                inference_ms=1.2,
                cpu_ms=1.0,
                worker_rss_mb=180.0,
            )
        )
    rows = [{"prediction": "setosa", "probabilities": PROBS} for _ in ROWS]
    return orjson.dumps(
        {
            "schema_version": 1,
            "batch_id": "b" * 32,
            "model_version": "iris-v1",
            "worker_id": "w1",
            "results": rows,
            "error_code": None,
            "error_message": None,
            "queue_ms": 0.4,
            "inference_ms": 1.2,
            "cpu_ms": 1.0,
            "worker_rss_mb": 180.0,
        }
    )


def read_reply(body: bytes) -> Any:
    """As ingress's batcher reads a reply and its service the first row's prediction."""
    if STRUCTS:
        reply = messages.decode(body, messages.PredictResult)
        return reply.results[0].prediction
    data = orjson.loads(body)
    return data["results"][0]["prediction"]


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    """Microseconds per call: the best of five rounds of ``seconds / 5`` each."""
    best = float("inf")
    for _ in range(5):
        calls = 0
        start = time.process_time()
        end = start + seconds / 5
        while True:
            for _ in range(20):
                fn()
            calls += 20
            now = time.process_time()
            if now >= end:
                break
        best = min(best, (now - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="CPU seconds per figure")
    args = parser.parse_args()
    counter = iter(range(10**12))
    events = [build_event(n) for n in range(2_000)]
    message = batch_body("c" * 32, "ingress-1", events)
    reply = build_reply()
    figures = {
        "ingress: build + encode one request event": per_call_us(
            lambda: build_event(next(counter)), args.seconds
        ),
        "ingress: encode a 64-row predict batch": per_call_us(build_batch, args.seconds),
        "ingress: decode a 64-row reply": per_call_us(lambda: read_reply(reply), args.seconds),
        "predictor: build + encode a 64-row reply": per_call_us(build_reply, args.seconds),
        "consumer: decode a 2,000-event message into columns": per_call_us(
            lambda: decode_event_batch(message), args.seconds
        ),
    }
    print(f"contracts: {'msgspec structs' if STRUCTS else 'hand-built dicts (before)'}")
    for what, us in figures.items():
        print(f"  {what:<55} {us:10.1f} us")


if __name__ == "__main__":
    main()
