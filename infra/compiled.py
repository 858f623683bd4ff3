"""Compiled inference: a model version converted to ONNX (skl2onnx) and run with onnxruntime,
used only where it answers what scikit-learn answers.

``compile_estimator`` converts a fitted estimator, runs both on check rows (a version's held-out
rows, or rows sampled from its feature spec) through the very code the predictor uses
(``CompiledModel``), and returns the ONNX bytes with a *serving record*: runtime ``onnx`` when the
labels are identical and the probabilities/values within ``TOLERANCE``, else runtime ``sklearn``
and the reason. Inputs are doubles (``DoubleTensorType``) so tree thresholds decide as in
scikit-learn; probabilities come as a tensor (no ZipMap). ``compile_model_file`` is the
child-process entry (``infra.sandbox.run_limited``): the file is checked and loaded as an upload
is, the ONNX file written next to it, only JSON comes back.

The predictor's ``CompiledModel`` answers a batch only when every value is one the check covered
(a string column's value among the categories its encoder knows, a missing number only where
scikit-learn accepts one); any other batch, and any batch onnxruntime fails, goes to
scikit-learn, so per-row errors stay scikit-learn's.
"""

from __future__ import annotations

import copy
import logging
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

ONNX_FILE = "model.onnx"
SERVING_KEY = "serving"
"""Key of ``metadata.json`` holding the serving record (runtime, reason, check, input layout)."""
ONNX_HASH_KEY = "onnx_sha256"
"""Key of the serving record holding the SHA-256 of ``model.onnx``."""
TOLERANCE = 1e-5
"""Largest difference allowed between onnxruntime's and scikit-learn's probabilities or values
(relative to the value for values beyond 1)."""
MAX_CHECK_ROWS = 2000
ML_OPSET = 3
"""ai.onnx.ml opset 3: tree ensembles keep double thresholds (``*_as_tensor``)."""

RUNTIME_ONNX = "onnx"
RUNTIME_SKLEARN = "sklearn"


class CompileError(Exception):
    """The version cannot be served by onnxruntime; the message says why (shown to users)."""


# --- the input layout -------------------------------------------------------------------------


@dataclass(frozen=True)
class InputLayout:
    """What the predictor builds from a batch: one ``[N, F]`` double tensor named ``X``
    (``kind="tensor"``, columns in ``columns`` order) or one ``[N, 1]`` input per column named
    after it (``kind="columns"``), each ``double`` or ``string``."""

    kind: str
    columns: tuple[str, ...]
    dtypes: tuple[str, ...]
    categories: dict[str, frozenset[str]]
    """Per string column, the values the encoders know (any other value goes to scikit-learn)."""
    missing_numbers: bool
    """Whether a missing number (``None`` → NaN) may go to onnxruntime (scikit-learn accepts it
    and the check covered it)."""

    def as_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "inputs": [
                {"name": c, "dtype": d} for c, d in zip(self.columns, self.dtypes, strict=True)
            ],
            "categories": {c: sorted(v) for c, v in self.categories.items()},
            "missing_numbers": self.missing_numbers,
        }

    @classmethod
    def from_json(cls, value: dict[str, Any]) -> InputLayout:
        inputs = value["inputs"]
        kind = str(value["kind"])
        if kind not in {"tensor", "columns"}:
            raise ValueError(f"unknown input layout {kind!r}")
        dtypes = tuple(str(i["dtype"]) for i in inputs)
        if any(d not in {"double", "string"} for d in dtypes):
            raise ValueError("input dtypes must be double or string")
        return cls(
            kind=kind,
            columns=tuple(str(i["name"]) for i in inputs),
            dtypes=dtypes,
            categories={
                str(c): frozenset(str(v) for v in vs)
                for c, vs in dict(value.get("categories") or {}).items()
            },
            missing_numbers=bool(value.get("missing_numbers")),
        )


# --- running ----------------------------------------------------------------------------------


def session_of(data: bytes) -> Any:
    """An onnxruntime session on one thread (the predictor's parallelism is its processes)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


class CompiledModel:
    """A version's ONNX session with the layout to feed it; answers like scikit-learn."""

    def __init__(self, session: Any, layout: InputLayout, classifier: bool) -> None:
        self.session = session
        self.layout = layout
        self.classifier = classifier
        outputs = [o.name for o in session.get_outputs()]
        self._label = outputs[0]
        self._proba = outputs[1] if classifier and len(outputs) > 1 else None
        self._positions: dict[tuple[str, ...], list[int]] = {}
        self.size_bytes = 0
        """Size of the ONNX file (the predictor reports it with the skops file's)."""

    @classmethod
    def of(cls, data: bytes, layout: dict[str, Any], classifier: bool) -> CompiledModel:
        return cls(session_of(data), InputLayout.from_json(layout), classifier)

    def _where(self, feature_names: list[str]) -> list[int] | None:
        key = tuple(feature_names)
        found = self._positions.get(key)
        if found is None:
            index = {name: i for i, name in enumerate(feature_names)}
            if any(c not in index for c in self.layout.columns):
                return None
            found = [index[c] for c in self.layout.columns]
            if len(self._positions) < 64:
                self._positions[key] = found
        return found

    def inputs(self, feature_names: list[str], rows: list[list[Any]]) -> dict[str, Any] | None:
        """The session's inputs for ``rows``, or ``None`` when a value is one the check did not
        cover (then scikit-learn answers the batch)."""
        where = self._where(feature_names)
        if where is None or not rows:
            return None
        layout = self.layout
        if layout.kind == "tensor":
            if not layout.missing_numbers and any(v is None for row in rows for v in row):
                return None
            matrix = np.array(rows, dtype=np.float64)
            if where != list(range(matrix.shape[1])):
                matrix = matrix[:, where]
            return {"X": matrix}
        feeds: dict[str, Any] = {}
        for name, dtype, at in zip(layout.columns, layout.dtypes, where, strict=True):
            values = [row[at] for row in rows]
            if dtype == "string":
                known = layout.categories.get(name)
                if known is None or not all(type(v) is str and v in known for v in values):
                    return None
                feeds[name] = np.array(values, dtype=object).reshape(-1, 1)
            else:
                if not layout.missing_numbers and any(v is None for v in values):
                    return None
                feeds[name] = np.array(values, dtype=np.float64).reshape(-1, 1)
        return feeds

    def predict(
        self, feeds: dict[str, Any], with_proba: bool
    ) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
        """Labels (or values) and, for a classifier asked for them, probabilities."""
        wanted = [self._label]
        if with_proba and self._proba is not None:
            wanted.append(self._proba)
        outputs = self.session.run(wanted, feeds)
        labels = np.asarray(outputs[0])
        if labels.ndim > 1:
            labels = labels.reshape(labels.shape[0], -1)[:, 0] if labels.shape[1] == 1 else labels
        probabilities = np.asarray(outputs[1], dtype=float) if len(outputs) > 1 else None
        return labels, probabilities


# --- converting -------------------------------------------------------------------------------


def _column_transformer(estimator: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    first = estimator
    while isinstance(first, Pipeline) and first.steps:
        first = first.steps[0][1]
    return first if isinstance(first, ColumnTransformer) else None


def _register_double_imputer() -> None:
    """skl2onnx turns ``SimpleImputer`` into ONNX-ML ``Imputer``, which holds float32 values and
    which onnxruntime has no double kernel for. Numbers: ``Where(IsNaN(x), statistics, x)`` in
    the input's own precision. Strings (where scikit-learn's missing value is NaN): the
    predictor never sends a missing string to onnxruntime, so the step is the identity."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.data_types import StringTensorType
    from skl2onnx.operator_converters.imputer_op import convert_sklearn_imputer
    from skl2onnx.proto import onnx_proto
    from skl2onnx.shape_calculators.imputer import calculate_sklearn_imputer_output_shapes
    from sklearn.impute import SimpleImputer

    def convert(scope: Any, operator: Any, container: Any) -> None:
        op = operator.raw_operator
        source = operator.inputs[0]
        missing = op.missing_values
        nan_missing = isinstance(missing, float) and math.isnan(missing)
        if isinstance(source.type, StringTensorType):
            if not nan_missing or len(operator.inputs) != 1:
                convert_sklearn_imputer(scope, operator, container)
                return
            container.add_node("Identity", [source.full_name], [operator.outputs[0].full_name])
            return
        kind = source.type.to_onnx_type().tensor_type.elem_type
        if kind not in (onnx_proto.TensorProto.DOUBLE, onnx_proto.TensorProto.FLOAT):
            convert_sklearn_imputer(scope, operator, container)
            return
        if not nan_missing or len(operator.inputs) != 1:
            raise CompileError("SimpleImputer: only NaN as the missing value is supported")
        dtype = np.float64 if kind == onnx_proto.TensorProto.DOUBLE else np.float32
        stats = np.asarray(op.statistics_, dtype=dtype)
        if op.keep_empty_features is False and np.isnan(stats).any():
            raise CompileError("SimpleImputer drops empty features")
        fill = scope.get_unique_variable_name("fill")
        container.add_initializer(fill, kind, [1, len(stats)], stats.tolist())
        isnan = scope.get_unique_variable_name("isnan")
        container.add_node("IsNaN", [source.full_name], [isnan])
        container.add_node(
            "Where", [isnan, fill, source.full_name], [operator.outputs[0].full_name]
        )

    update_registered_converter(
        SimpleImputer,
        "SklearnSimpleImputer",
        calculate_sklearn_imputer_output_shapes,
        convert,
        overwrite=True,
    )


TREE_CONVERTERS = (
    "SklearnDecisionTreeClassifier",
    "SklearnDecisionTreeRegressor",
    "SklearnExtraTreeClassifier",
    "SklearnExtraTreeRegressor",
    "SklearnRandomForestClassifier",
    "SklearnRandomForestRegressor",
    "SklearnExtraTreesClassifier",
    "SklearnExtraTreesRegressor",
    "SklearnGradientBoostingClassifier",
    "SklearnGradientBoostingRegressor",
)
_TENSOR_ATTRIBUTES = ("nodes_values", "class_weights", "target_weights", "base_values")


def _double_type() -> Any:
    from skl2onnx.common.data_types import DoubleTensorType

    return DoubleTensorType


class _DoubleTrees:
    """A skl2onnx container seen by a tree converter: its tree ensemble nodes keep double
    thresholds and weights (ai.onnx.ml 3 ``*_as_tensor`` attributes, which skl2onnx 1.20 never
    writes: it rounds them to float32, which flips decisions near a threshold), and their float
    scores are cast back to the double the rest of the graph expects."""

    def __init__(self, container: Any, scope: Any, operator: Any) -> None:
        self._container = container
        self._scope = scope
        self._float_outputs = {
            v.full_name for v in operator.outputs if not isinstance(v.type, _double_type())
        }

    def __getattr__(self, name: str) -> Any:
        return getattr(self._container, name)

    def add_node(self, op_type: str, inputs: Any, outputs: Any, **attrs: Any) -> Any:
        if op_type not in ("TreeEnsembleClassifier", "TreeEnsembleRegressor"):
            return self._container.add_node(op_type, inputs, outputs, **attrs)
        from onnx import numpy_helper
        from skl2onnx.proto import onnx_proto

        for key in _TENSOR_ATTRIBUTES:
            value = attrs.get(key)
            if value is not None:
                array = np.asarray(value, dtype=np.float64).ravel()
                attrs[f"{key}_as_tensor"] = numpy_helper.from_array(array, name=key)
                del attrs[key]
        attrs.pop("nodes_hitrates", None)
        attrs["op_version"] = ML_OPSET
        outputs = [outputs] if isinstance(outputs, str) else list(outputs)
        scores = 1 if op_type == "TreeEnsembleClassifier" else 0
        final = outputs[scores]
        if final in self._float_outputs:  # declared float (a forest's probabilities)
            return self._container.add_node(op_type, inputs, outputs, **attrs)
        outputs[scores] = self._scope.get_unique_variable_name("float_scores")
        self._container.add_node(op_type, inputs, outputs, **attrs)
        self._container.add_node(
            "Cast", [outputs[scores]], [final], to=onnx_proto.TensorProto.DOUBLE
        )
        return None


def _register_double_trees() -> None:
    from skl2onnx.common import _registration

    for alias in TREE_CONVERTERS:
        original = _registration._converter_pool.get(alias)
        if original is None or getattr(original, "_modelgate_double", False):
            continue

        def convert(scope: Any, operator: Any, container: Any, _original: Any = original) -> None:
            if isinstance(operator.inputs[0].type, _double_type()):
                _original._fct(
                    scope, operator, _DoubleTrees(container, scope, operator), op_version=ML_OPSET
                )
            else:
                _original._fct(scope, operator, container)

        wrapped = _registration.RegisteredConverter(convert, original.get_allowed_options())
        wrapped._modelgate_double = True
        _registration._converter_pool[alias] = wrapped


def _encoded_categories(estimator: Any) -> dict[str, frozenset[str]]:
    from infra.model_store import encoder_categories

    return {c: frozenset(v) for c, v in encoder_categories(estimator).items()}


def convert(
    estimator: Any, feature_names: list[str], string_columns: set[str]
) -> tuple[bytes, InputLayout, list[str]]:
    """Convert a fitted estimator to ONNX with double inputs and no ZipMap; return the bytes,
    the input layout and the converter's warnings. Raises ``CompileError`` when it cannot."""
    from skl2onnx import convert_sklearn, get_latest_tested_opset_version
    from skl2onnx.common.data_types import DoubleTensorType, StringTensorType

    _register_double_imputer()
    _register_double_trees()
    model = copy.deepcopy(estimator)
    columns = _column_transformer(model)
    categories: dict[str, frozenset[str]] = {}
    if columns is not None and hasattr(columns, "feature_names_in_"):
        names = [str(n) for n in columns.feature_names_in_]
        strings = [n for n in names if n in string_columns]
        if not strings:
            # All numeric: select columns by position in one [N, F] tensor.
            index = {n: i for i, n in enumerate(names)}
            rewritten = []
            for name, transformer, selected in columns.transformers_:
                if isinstance(selected, (list, tuple, np.ndarray)) and all(
                    isinstance(c, str) for c in selected
                ):
                    selected = [index[str(c)] for c in selected]
                rewritten.append((name, transformer, selected))
            columns.transformers_ = rewritten
            kind, dtypes = "tensor", tuple("double" for _ in names)
            initial = [("X", DoubleTensorType([None, len(names)]))]
        else:
            kind = "columns"
            dtypes = tuple("string" if n in string_columns else "double" for n in names)
            initial = [
                (n, StringTensorType([None, 1]) if d == "string" else DoubleTensorType([None, 1]))
                for n, d in zip(names, dtypes, strict=True)
            ]
            categories = _encoded_categories(estimator)
            unknown = [n for n in strings if n not in categories]
            if unknown:
                raise CompileError(
                    "cannot tell the categories an encoder knows for column(s) "
                    + ", ".join(repr(n) for n in unknown[:5])
                )
    else:
        if string_columns:
            raise CompileError("category inputs are converted only through a ColumnTransformer")
        names = list(feature_names)
        n_in = getattr(model, "n_features_in_", None)
        if n_in is not None and int(n_in) != len(names):
            raise CompileError(f"the model takes {n_in} inputs; its schema has {len(names)}")
        kind, dtypes = "tensor", tuple("double" for _ in names)
        initial = [("X", DoubleTensorType([None, len(names)]))]
    options: dict[Any, Any] = {}
    if hasattr(model, "classes_"):
        options = {id(model): {"zipmap": False}}
    opset = {"": min(get_latest_tested_opset_version(), 21), "ai.onnx.ml": ML_OPSET}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            onnx_model = convert_sklearn(
                model, initial_types=initial, options=options or None, target_opset=opset
            )
        except CompileError:
            raise
        except Exception as exc:
            message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            if "Unable to find a shape calculator" in message or "converter" in message.lower():
                raise CompileError(
                    f"skl2onnx has no converter for {_unsupported(message)}"
                ) from None
            raise CompileError(f"skl2onnx failed: {type(exc).__name__}: {message[:200]}") from None
    noted = [
        f"{w.category.__name__}: {w.message}"
        for w in caught
        if not issubclass(
            w.category, (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
        )
    ]
    layout = InputLayout(
        kind=kind,
        columns=tuple(names),
        dtypes=dtypes,
        categories=categories,
        missing_numbers=False,
    )
    return onnx_model.SerializeToString(), layout, noted


def _unsupported(message: str) -> str:
    """The estimator class a skl2onnx error names (the message otherwise)."""
    for token in message.replace("'", " ").replace('"', " ").replace(">", " ").split():
        if token.startswith("sklearn.") or token.endswith(("Classifier", "Regressor")):
            return token.rsplit(".", 1)[-1]
    return message[:200]


# --- checking ---------------------------------------------------------------------------------


def _sklearn_answers(
    estimator: Any, feature_names: list[str], rows: list[list[Any]], with_proba: bool
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any] | None]:
    import pandas as pd

    frame = pd.DataFrame(rows, columns=feature_names)
    labels = np.asarray(estimator.predict(frame))
    proba = np.asarray(estimator.predict_proba(frame), dtype=float) if with_proba else None
    return labels, proba


def _accepts_missing_numbers(
    estimator: Any, feature_names: list[str], rows: list[list[Any]], numeric: list[int]
) -> list[list[Any]] | None:
    """Rows with missing numbers to add to the check, or ``None`` if scikit-learn refuses them
    (then the predictor keeps such rows for scikit-learn)."""
    if not numeric or not rows:
        return None
    holes = []
    for k, row in enumerate(rows[: min(len(rows), 20)]):
        copy_ = list(row)
        copy_[numeric[k % len(numeric)]] = None
        holes.append(copy_)
    all_missing = list(rows[0])
    for at in numeric:
        all_missing[at] = None
    holes.append(all_missing)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _sklearn_answers(estimator, feature_names, holes, False)
    except Exception:
        return None
    return holes


@dataclass
class CheckResult:
    agrees: bool
    reason: str
    max_abs_diff: float | None
    rows_checked: int


def check(
    estimator: Any,
    compiled: CompiledModel,
    feature_names: list[str],
    rows: list[list[Any]],
) -> CheckResult:
    """Run scikit-learn and onnxruntime on ``rows`` (the rows ``compiled`` accepts): identical
    labels, probabilities and values within ``TOLERANCE``."""
    classifier = hasattr(estimator, "classes_")
    with_proba = classifier and hasattr(estimator, "predict_proba")
    feeds = compiled.inputs(feature_names, rows)
    if feeds is None:
        return CheckResult(False, "the check rows do not fit the ONNX inputs", None, 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected, expected_proba = _sklearn_answers(estimator, feature_names, rows, with_proba)
    if np.ndim(expected) > 1:
        return CheckResult(False, "models with several outputs are served by scikit-learn", None, 0)
    labels, proba = compiled.predict(feeds, with_proba)
    if labels.shape[0] != len(rows) or labels.ndim != 1:
        return CheckResult(False, "onnxruntime answered a different number of rows", None, 0)
    n = len(rows)
    if classifier:
        same = [
            _plain(a) == _plain(b) and type(_plain(a)) is type(_plain(b))
            for a, b in zip(expected, labels, strict=True)
        ]
        worst = 0.0
        if with_proba:
            if proba is None or expected_proba is None or proba.shape != expected_proba.shape:
                return CheckResult(
                    False, "onnxruntime gave no probabilities of that shape", None, n
                )
            worst = float(np.max(np.abs(proba - np.asarray(expected_proba)))) if n else 0.0
        if not all(same):
            wrong = len(same) - sum(same)
            return CheckResult(
                False,
                f"labels differ on {wrong} of {n} check rows",
                worst if with_proba else None,
                n,
            )
        if not math.isfinite(worst) or worst > TOLERANCE:
            return CheckResult(
                False, f"probabilities differ by {worst:.1e} on check rows", worst, n
            )
        return CheckResult(True, "", worst if with_proba else 0.0, n)
    values = np.asarray(labels, dtype=float).ravel()
    reference = np.asarray(expected, dtype=float).ravel()
    if values.shape != reference.shape:
        return CheckResult(False, "onnxruntime answered values of another shape", None, n)
    diff = np.abs(values - reference)
    worst = float(np.max(diff)) if n else 0.0
    scaled = diff / np.maximum(1.0, np.abs(reference))
    if not np.all(np.isfinite(diff)) or (n and float(np.max(scaled)) > TOLERANCE):
        return CheckResult(False, f"values differ by {worst:.1e} on check rows", worst, n)
    return CheckResult(True, "", worst, n)


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- rows to check on -------------------------------------------------------------------------


def plausible_ranges(estimator: Any, feature_names: list[str]) -> dict[str, tuple[float, float]]:
    """Per numeric input, a centre and a spread the model's own preprocessing learnt (a scaler's
    mean and scale, a min-max range, an imputer's statistic): where sampled rows should fall."""
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    found: dict[str, tuple[float, float]] = {}

    def learn(step: Any, names: list[str]) -> None:
        parts = step.steps if isinstance(step, Pipeline) else [(None, step)]
        for _, part in parts:
            centre: Any = None
            spread: Any = None
            if hasattr(part, "data_min_") and hasattr(part, "data_max_"):
                centre = (part.data_min_ + part.data_max_) / 2
                spread = (part.data_max_ - part.data_min_) / 2
            elif getattr(part, "scale_", None) is not None and (
                getattr(part, "mean_", None) is not None
                or getattr(part, "center_", None) is not None
            ):
                means = getattr(part, "mean_", None)
                centre = means if means is not None else part.center_
                spread = part.scale_
            elif isinstance(part, SimpleImputer):
                stats = np.asarray(getattr(part, "statistics_", []))
                if stats.dtype.kind in "fiu" and len(stats) == len(names):
                    for name, value in zip(names, stats, strict=True):
                        if math.isfinite(float(value)):
                            found[name] = (float(value), max(1.0, abs(float(value)) / 2))
                continue
            else:
                return  # past a step that mixes columns, values no longer map to inputs
            try:
                pairs = np.broadcast_arrays(np.asarray(centre, float), np.asarray(spread, float))
            except ValueError:
                return
            if pairs[0].shape == (len(names),):
                for name, c, w in zip(names, pairs[0], pairs[1], strict=True):
                    if math.isfinite(c) and math.isfinite(w):
                        found[name] = (float(c), float(abs(w)) or 1.0)
            return

    try:
        columns = _column_transformer(estimator)
        if columns is not None:
            for _, transformer, selected in getattr(columns, "transformers_", []):
                if isinstance(selected, (list, tuple, np.ndarray)) and all(
                    isinstance(c, str) for c in selected
                ):
                    learn(transformer, [str(c) for c in selected])
        elif isinstance(estimator, Pipeline) and len(estimator.steps) > 1:
            learn(Pipeline(estimator.steps[:-1]), feature_names)
    except Exception:  # a guide for sampling only
        log.debug("no plausible ranges for %s", type(estimator).__name__, exc_info=True)
    return found


def sampled_rows(
    features: list[dict[str, Any]],
    ranges: dict[str, tuple[float, float]] | None = None,
    n: int = 200,
    seed: int = 0,
) -> list[list[Any]]:
    """Rows made up from a feature spec (``FeatureSpec`` dicts) where a version has no held-out
    rows: numbers around the ``ranges`` the model's preprocessing learnt (else at several
    scales), integers, booleans, and the declared categories."""
    rng = np.random.default_rng(seed)
    ranges = ranges or {}
    columns: list[list[Any]] = []
    scales = np.array([0.1, 1.0, 10.0, 100.0])
    for spec in features:
        kind = spec.get("type")
        name = str(spec.get("name"))
        if kind == "category":
            choices = [str(c) for c in (spec.get("categories") or [])] or [""]
            columns.append([choices[int(i)] for i in rng.integers(0, len(choices), n)])
            continue
        if kind == "boolean":
            columns.append([bool(b) for b in rng.integers(0, 2, n)])
            continue
        if name in ranges:
            centre, spread = ranges[name]
            values = centre + spread * rng.normal(0, 1, n) * rng.choice([0.5, 1.0, 2.0], n)
        else:
            values = rng.normal(0, 1, n) * rng.choice(scales, n)
        if kind == "integer":
            values = np.rint(values)
        columns.append([float(v) for v in values])
    return [list(row) for row in zip(*columns, strict=True)] if columns else []


# --- the whole step ---------------------------------------------------------------------------


def _record(
    runtime: str,
    reason: str,
    source: str,
    result: CheckResult | None = None,
    layout: InputLayout | None = None,
) -> dict[str, Any]:
    import skl2onnx

    return {
        "runtime": runtime,
        "reason": reason,
        "max_abs_diff": None if result is None else result.max_abs_diff,
        "rows_checked": 0 if result is None else result.rows_checked,
        "rows_source": source,
        "layout": None if layout is None else layout.as_json(),
        "converter": f"skl2onnx {skl2onnx.__version__}",
    }


def compile_estimator(
    estimator: Any,
    features: list[dict[str, Any]],
    rows: list[list[Any]] | None,
    rows_source: str,
) -> tuple[bytes | None, dict[str, Any]]:
    """Convert and check; ``(onnx bytes, serving record)`` when onnxruntime agrees with
    scikit-learn on ``rows`` (``features`` order), else ``(None, record with the reason)``."""
    feature_names = [str(f["name"]) for f in features]
    strings = {str(f["name"]) for f in features if f.get("type") == "category"}
    if not rows:
        ranges = plausible_ranges(estimator, feature_names)
        rows, rows_source = sampled_rows(features, ranges), "sampled from the feature spec"
    rows = rows[:MAX_CHECK_ROWS]
    started = time.perf_counter()
    try:
        data, layout, noted = convert(estimator, feature_names, strings)
    except CompileError as exc:
        return None, _record(RUNTIME_SKLEARN, str(exc), rows_source)
    if noted:
        return None, _record(
            RUNTIME_SKLEARN, f"skl2onnx warned: {noted[0][:200]}", rows_source, layout=layout
        )
    numeric = [i for i, name in enumerate(feature_names) if name not in strings]
    holes = _accepts_missing_numbers(estimator, feature_names, rows, numeric)
    classifier = hasattr(estimator, "classes_")
    session = None

    def attempt(layout: InputLayout, rows: list[list[Any]]) -> CheckResult:
        nonlocal session
        try:
            session = session or session_of(data)
            compiled = CompiledModel(session, layout, classifier)
            # Only the rows the predictor would send to onnxruntime (one with a missing or
            # unseen category goes to scikit-learn there, so it is not onnxruntime's to check).
            rows = [row for row in rows if compiled.inputs(feature_names, [row]) is not None]
            if not rows:
                return CheckResult(False, "no check row fits the ONNX inputs", None, 0)
            return check(estimator, compiled, feature_names, rows)
        except Exception as exc:
            text = str(exc).strip()
            message = text.splitlines()[0] if text else type(exc).__name__
            return CheckResult(
                False, f"onnxruntime failed on the check rows: {message[:200]}", None, 0
            )

    result = CheckResult(False, "", None, 0)
    if holes is not None:
        # Missing numbers too, where scikit-learn takes them (an imputer, NaN-aware trees).
        with_missing = InputLayout(
            layout.kind, layout.columns, layout.dtypes, layout.categories, missing_numbers=True
        )
        result = attempt(with_missing, rows + holes)
        if result.agrees:
            layout = with_missing
    if not result.agrees:
        # Else rows with a missing number stay scikit-learn's (``missing_numbers`` false).
        result = attempt(layout, rows)
    if not result.agrees:
        return None, _record(RUNTIME_SKLEARN, result.reason, rows_source, result, layout)
    log.info(
        "compiled in %.2f s, checked on %d rows", time.perf_counter() - started, result.rows_checked
    )
    return data, _record(RUNTIME_ONNX, "", rows_source, result, layout)


def compile_model_file(
    path: str,
    features: list[dict[str, Any]],
    rows: list[list[Any]] | None,
    rows_source: str,
    out_path: str,
) -> dict[str, Any]:
    """Child-process entry (``infra.sandbox.run_limited``): load a skops file as an upload is
    loaded, compile it, write ``out_path`` when it agrees; answer the serving record (JSON)."""
    from infra.model_store import STORE_LIMITS, load_checked

    estimator = load_checked(Path(path).read_bytes(), STORE_LIMITS)
    data, record = compile_estimator(estimator, features, rows, rows_source)
    if data is not None:
        Path(out_path).write_bytes(data)
    return record


def fallback_record(reason: str) -> dict[str, Any]:
    """The serving record of a version whose compile step itself failed (crash, limits)."""
    return {
        "runtime": RUNTIME_SKLEARN,
        "reason": reason,
        "max_abs_diff": None,
        "rows_checked": 0,
        "rows_source": None,
        "layout": None,
        "converter": None,
    }
