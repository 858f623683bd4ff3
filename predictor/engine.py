"""Vectorised prediction of one batch against a cached model: the worker's logic, no I/O but disk.

``BatchPredictor.run`` is called in a worker thread so the event loop (heartbeats, replies) stays
responsive while scikit-learn computes.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from predictor.model_store import LoadedModel, ModelStore, ModelStoreError
from schemas import ErrorCode

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 300

ARGMAX_CLASSIFIERS = frozenset(
    {
        "LogisticRegression",
        "DecisionTreeClassifier",
        "RandomForestClassifier",
        "ExtraTreesClassifier",
        "GradientBoostingClassifier",
        "HistGradientBoostingClassifier",
        "GaussianNB",
    }
)
"""Classifiers whose ``predict`` is exactly ``classes_[argmax(predict_proba)]``: for them one
``predict_proba`` call gives both answers, halving the work per batch."""


def _final_step(estimator: Any) -> Any:
    steps = getattr(estimator, "steps", None)
    return steps[-1][1] if steps else estimator


class ModelCache:
    """An LRU cache of loaded model versions (thread-safe: predictions run in threads)."""

    def __init__(self, store: ModelStore, capacity: int) -> None:
        self._store = store
        self._capacity = max(1, capacity)
        self._models: OrderedDict[str, LoadedModel] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0
        self.evictions = 0

    def get(self, version_id: str) -> LoadedModel:
        with self._lock:
            model = self._models.get(version_id)
            if model is not None:
                self._models.move_to_end(version_id)
                return model
        model = self._store.load(version_id)
        with self._lock:
            self.loads += 1
            self._models[version_id] = model
            self._models.move_to_end(version_id)
            while len(self._models) > self._capacity:
                evicted, _ = self._models.popitem(last=False)
                self.evictions += 1
                log.info("evicted model %s from the cache", evicted)
        return model

    def loaded(self) -> dict[str, int]:
        """Loaded version ids and their artifact sizes in bytes, least recently used first."""
        with self._lock:
            return {key: model.size_bytes for key, model in self._models.items()}


@dataclass
class BatchOutcome:
    """What a worker replies for one batch (the fields of ``PredictResult`` it computes)."""

    results: list[dict[str, Any]]
    error_code: str | None = None
    error_message: str | None = None
    inference_ms: float = 0.0
    cpu_ms: float = 0.0
    row_errors: int = 0


def _scalar(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text[:MAX_ERROR_MESSAGE]


class BatchPredictor:
    """Runs ``predict`` (and ``predict_proba`` for classifiers) once per batch, vectorised."""

    def __init__(self, cache: ModelCache) -> None:
        self._cache = cache

    def run(
        self,
        model_version: str,
        feature_names: list[str],
        rows: list[list[Any]],
        want_probabilities: bool,
    ) -> BatchOutcome:
        started = time.perf_counter()
        cpu_started = time.thread_time()
        try:
            model = self._cache.get(model_version)
        except ModelStoreError as exc:
            log.warning("model %s unavailable: %s", model_version, exc)
            return BatchOutcome(
                results=[],
                error_code=ErrorCode.MODEL_UNAVAILABLE,
                error_message=f"model version {model_version} is unavailable",
            )
        estimator = model.estimator
        with_proba = want_probabilities and hasattr(estimator, "predict_proba")
        row_errors = 0
        try:
            results = self._predict(estimator, feature_names, rows, with_proba)
        except Exception as exc:
            log.info("batch predict failed (%s); retrying %d rows one by one", exc, len(rows))
            results = []
            for row in rows:
                try:
                    results.extend(self._predict(estimator, feature_names, [row], with_proba))
                except Exception as row_exc:
                    row_errors += 1
                    results.append(
                        {
                            "error_code": ErrorCode.PREDICTION_FAILED.value,
                            "error_message": _short(row_exc),
                        }
                    )
        return BatchOutcome(
            results=results,
            inference_ms=(time.perf_counter() - started) * 1000.0,
            cpu_ms=(time.thread_time() - cpu_started) * 1000.0,
            row_errors=row_errors,
        )

    @staticmethod
    def _predict(
        estimator: Any, feature_names: list[str], rows: list[list[Any]], with_proba: bool
    ) -> list[dict[str, Any]]:
        frame = pd.DataFrame(rows, columns=feature_names)
        if not with_proba:
            return [{"prediction": _scalar(p)} for p in estimator.predict(frame)]
        final = type(_final_step(estimator))
        if final.__name__ in ARGMAX_CLASSIFIERS and final.__module__.startswith("sklearn."):
            probabilities = np.asarray(estimator.predict_proba(frame), dtype=float)
            predictions = np.asarray(estimator.classes_).take(np.argmax(probabilities, axis=1))
        else:
            predictions = estimator.predict(frame)
            probabilities = np.asarray(estimator.predict_proba(frame), dtype=float)
        classes = [str(_scalar(c)) for c in estimator.classes_]
        return [
            {
                "prediction": _scalar(p),
                "probabilities": {c: round(float(x), 6) for c, x in zip(classes, row, strict=True)},
            }
            for p, row in zip(predictions, probabilities, strict=True)
        ]
