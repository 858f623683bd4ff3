"""Vectorised prediction of one batch against a cached model: the worker's logic, no I/O but disk.

A version with a verified ONNX conversion (``LoadedModel.compiled``) is answered by onnxruntime;
a batch it does not cover or fails on is answered by scikit-learn, as every other version is.

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

from infra.compiled import SERVING_KEY
from infra.model_store import LoadedModel, ModelStore, ModelStoreError
from schemas import ErrorCode
from schemas.messages import RowResult

log = logging.getLogger(__name__)

MAX_ERROR_MESSAGE = 300
SERVING_RECHECK_S = 5.0
"""How often a loaded version without a serving record looks for one (``ModelCache``)."""

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
        self._loading: dict[str, threading.Lock] = {}
        self._recheck_at: dict[str, float] = {}
        self.loads = 0
        self.evictions = 0

    def get(self, version_id: str) -> LoadedModel:
        """The loaded version, loading it on a miss. Threads asking for a version another thread
        is loading (a preload, say) wait for that load instead of loading it a second time."""
        with self._lock:
            model = self._hit(version_id)
            if model is None:
                loading = self._loading.setdefault(version_id, threading.Lock())
        if model is not None:
            return self._served_now(model)
        with loading:
            with self._lock:
                model = self._hit(version_id)
                if model is not None:
                    return model
            try:
                model = self._store.load(version_id)
                log.info(
                    "loaded model %s, served by %s",
                    version_id,
                    "onnxruntime" if model.compiled is not None else "scikit-learn",
                )
                with self._lock:
                    self.loads += 1
                    self._models[version_id] = model
                    self._models.move_to_end(version_id)
                    while len(self._models) > self._capacity:
                        evicted, _ = self._models.popitem(last=False)
                        self.evictions += 1
                        log.info("evicted model %s from the cache", evicted)
            finally:
                with self._lock:
                    if self._loading.get(version_id) is loading:
                        del self._loading[version_id]
        return model

    def _served_now(self, model: LoadedModel) -> LoadedModel:
        """A version loaded before it had a serving record (management-api compiles versions
        saved before compiled inference in the background when it starts) is switched to
        onnxruntime once the record says so: its record is looked for every
        ``SERVING_RECHECK_S`` at most, until there is one."""
        if model.compiled is not None or SERVING_KEY in model.metadata:
            return model
        now = time.monotonic()
        with self._lock:
            if now < self._recheck_at.get(model.version_id, 0.0):
                return model
            self._recheck_at[model.version_id] = now + SERVING_RECHECK_S
        try:
            served = self._store.with_serving_record(model)
        except (ModelStoreError, OSError) as exc:
            log.warning("model %s: its serving record cannot be read (%s)", model.version_id, exc)
            return model
        if served is None:
            return model
        with self._lock:
            if self._models.get(model.version_id) is model:
                self._models[model.version_id] = served
            self._recheck_at.pop(model.version_id, None)
        log.info(
            "model %s has a serving record now: served by %s",
            model.version_id,
            "onnxruntime" if served.compiled is not None else "scikit-learn",
        )
        return served

    def _hit(self, version_id: str) -> LoadedModel | None:
        model = self._models.get(version_id)
        if model is not None:
            self._models.move_to_end(version_id)
        return model

    def compiled(self, version_id: str) -> bool:
        """Whether the version is loaded and served by onnxruntime (fast enough to run on the
        event loop: tens of microseconds a batch, no thread hand-off)."""
        with self._lock:
            model = self._models.get(version_id)
            return model is not None and model.compiled is not None

    def holds(self, version_id: str) -> bool:
        """Whether the version is loaded (without touching its place in the LRU order)."""
        with self._lock:
            return version_id in self._models

    def loaded(self) -> dict[str, int]:
        """Loaded version ids and their artifact sizes in bytes, least recently used first."""
        with self._lock:
            return {
                key: model.size_bytes + (model.compiled.size_bytes if model.compiled else 0)
                for key, model in self._models.items()
            }


@dataclass
class BatchOutcome:
    """What a worker replies for one batch (the fields of ``PredictResult`` it computes)."""

    results: list[RowResult]
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
        compiled: list[RowResult] | None = None
        if model.compiled is not None:
            try:
                compiled = self._predict_compiled(model, feature_names, rows, with_proba)
            except Exception as exc:
                # scikit-learn answers it instead, so a bad row gets scikit-learn's own error.
                log.info("onnxruntime failed on a batch of %d rows (%s)", len(rows), _short(exc))
        if compiled is not None:
            results = compiled
        else:
            results, row_errors = self._predict_sklearn(estimator, feature_names, rows, with_proba)
        return BatchOutcome(
            results=results,
            inference_ms=(time.perf_counter() - started) * 1000.0,
            cpu_ms=(time.thread_time() - cpu_started) * 1000.0,
            row_errors=row_errors,
        )

    @staticmethod
    def _predict_compiled(
        model: LoadedModel, feature_names: list[str], rows: list[list[Any]], with_proba: bool
    ) -> list[RowResult] | None:
        """The batch answered by onnxruntime, or ``None`` when a value is one its check did not
        cover (a category its encoders do not know, a missing value): scikit-learn answers."""
        compiled = model.compiled
        assert compiled is not None
        feeds = compiled.inputs(feature_names, rows)
        if feeds is None:
            return None
        labels, probabilities = compiled.predict(feeds, with_proba)
        if len(labels) != len(rows):
            raise ValueError(f"onnxruntime answered {len(labels)} rows for {len(rows)}")
        if not with_proba:
            return [RowResult(prediction=_scalar(p)) for p in labels]
        if probabilities is None:
            return None
        classes = [str(_scalar(c)) for c in model.estimator.classes_]
        return [
            RowResult(
                prediction=_scalar(p),
                probabilities={c: round(float(x), 6) for c, x in zip(classes, row, strict=True)},
            )
            for p, row in zip(labels, probabilities, strict=True)
        ]

    def _predict_sklearn(
        self,
        estimator: Any,
        feature_names: list[str],
        rows: list[list[Any]],
        with_proba: bool,
    ) -> tuple[list[RowResult], int]:
        """The batch answered by scikit-learn; a failing batch is retried row by row so one bad
        row gets its own error."""
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
                        RowResult(
                            error_code=ErrorCode.PREDICTION_FAILED.value,
                            error_message=_short(row_exc),
                        )
                    )
        return results, row_errors

    @staticmethod
    def _predict(
        estimator: Any, feature_names: list[str], rows: list[list[Any]], with_proba: bool
    ) -> list[RowResult]:
        frame = pd.DataFrame(rows, columns=feature_names)
        if not with_proba:
            return [RowResult(prediction=_scalar(p)) for p in estimator.predict(frame)]
        final = type(_final_step(estimator))
        if final.__name__ in ARGMAX_CLASSIFIERS and final.__module__.startswith("sklearn."):
            probabilities = np.asarray(estimator.predict_proba(frame), dtype=float)
            predictions = np.asarray(estimator.classes_).take(np.argmax(probabilities, axis=1))
        else:
            predictions = estimator.predict(frame)
            probabilities = np.asarray(estimator.predict_proba(frame), dtype=float)
        classes = [str(_scalar(c)) for c in estimator.classes_]
        return [
            RowResult(
                prediction=_scalar(p),
                probabilities={c: round(float(x), 6) for c, x in zip(classes, row, strict=True)},
            )
            for p, row in zip(predictions, probabilities, strict=True)
        ]
