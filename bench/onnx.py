"""Per-call inference time, scikit-learn against onnxruntime (issue 13).

``python -m bench onnx`` trains every algorithm of the catalogue on its built-in dataset(s) with
its default parameters (as a user's training job does) and the demo's iris pipeline, compiles
each version (``infra.compiled``), saves it in a temporary model store and times the predictor's
own call (``BatchPredictor.run``: the frame or tensor built from the rows, the model, the
per-row results) for batches of 1 and 24 rows, through onnxruntime and through scikit-learn.
Each cell is the median of ``--calls`` calls (after a warm-up); the machine is shared, so read
the ratios rather than the absolute figures.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

CASES = [
    ("demo iris pipeline (logistic regression)", "logistic_regression", "iris"),
    ("logistic regression", "logistic_regression", "breast_cancer"),
    ("linear regression", "linear_regression", "diabetes"),
    ("random forest (100 trees)", "random_forest", "iris"),
    ("random forest (100 trees)", "random_forest", "diabetes"),
    ("gradient boosting (100 stages)", "gradient_boosting", "iris"),
    ("gradient boosting (100 stages)", "gradient_boosting", "diabetes"),
]


def per_call_us(call: Any, calls: int) -> float:
    for _ in range(10):
        call()
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        call()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e6


def measure(calls: int) -> list[dict[str, Any]]:
    from infra.compiled import SERVING_KEY, compile_estimator
    from infra.model_store import ModelStore
    from management_api.datasets import load_dataset
    from management_api.fitting import train
    from predictor.engine import BatchPredictor, ModelCache
    from schemas import Task

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-onnx-") as tmp:
        store = ModelStore(Path(tmp))
        for label, algorithm, dataset in CASES:
            x, y, task = load_dataset(dataset)
            frame = x.copy()
            frame["target"] = y
            trained = train(frame, "target", algorithm, {}, task)
            features = [f.model_dump(mode="json") for f in trained.features]
            onnx, record = compile_estimator(
                trained.estimator, features, trained.check_rows, "held-out split"
            )
            version = f"{algorithm}-{dataset}"
            store.save(version, trained.estimator, {SERVING_KEY: record}, onnx)
            cache = ModelCache(store, 4)
            model = cache.get(version)
            compiled = model.compiled
            names = [f["name"] for f in features]
            rows = x[names].astype(float).values.tolist()
            proba = task == Task.CLASSIFICATION
            row: dict[str, Any] = {
                "model": label,
                "dataset": dataset,
                "runtime": record["runtime"],
                "reason": record["reason"],
            }
            predictor = BatchPredictor(cache)
            for n in (1, 24):
                batch = rows[:n]

                def call(b: list[Any] = batch, v: str = version, f: list[str] = names) -> None:
                    predictor.run(v, f, b, proba)  # noqa: B023 (timed here, at once)

                model.compiled = None
                row[f"sklearn_{n}"] = per_call_us(call, calls)
                model.compiled = compiled
                if compiled is not None:
                    row[f"onnx_{n}"] = per_call_us(call, calls)
            results.append(row)
    return results


def render(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | dataset | served by | sklearn 1 row µs | onnx 1 row µs | speed-up | "
        "sklearn 24 rows µs | onnx 24 rows µs | speed-up |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        cells = [r["model"], r["dataset"], r["runtime"]]
        for n in (1, 24):
            s, o = r[f"sklearn_{n}"], r.get(f"onnx_{n}")
            cells += [f"{s:,.0f}", "—" if o is None else f"{o:,.0f}"]
            cells.append("—" if o is None else f"{s / o:.0f}x")
        lines.append("| " + " | ".join(cells) + " |")
        if r["runtime"] != "onnx":
            lines.append(f"|  | | reason: {r['reason']} | | | | | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench onnx", description=__doc__)
    parser.add_argument("--calls", type=int, default=300, help="timed calls per cell")
    args = parser.parse_args(argv)
    print(render(measure(args.calls)))
    return 0
