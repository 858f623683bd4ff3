"""The model store: one folder per model version holding a skops artifact and its metadata.

Artifacts are written atomically (a temporary folder renamed into place) so a reader never sees a
half-written version. A skops file names the classes it is built from and skops calls them, so a
file is only ever opened after three checks: its zip archive is within bounds (entries, expanded
size, ``schema.json`` size, read from the central directory before anything is expanded); every
node of its schema uses a known loader and an exact, fully qualified class name from
``ALLOWED_TYPES`` (never a package prefix: ``numpy.*`` contains functions that run code); and,
once loaded, the structures scikit-learn indexes without bounds checks (trees, libsvm models,
neighbour trees) are consistent. Uploads are checked in a child process (``verify_model_file``);
the store then records the SHA-256 of the verified file in ``metadata.json`` and ``load`` refuses
a file without a recorded hash or whose bytes no longer match it.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import struct
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import scipy.sparse as sp
import skops.io as sio
from sklearn import (
    compose,
    decomposition,
    dummy,
    ensemble,
    impute,
    linear_model,
    naive_bayes,
    neighbors,
    pipeline,
    preprocessing,
    svm,
    tree,
)
from sklearn._loss import _loss as cy_loss
from sklearn._loss import link as loss_link
from sklearn._loss import loss as py_loss
from sklearn.base import is_classifier, is_regressor
from sklearn.linear_model import _sgd_fast as sgd_loss
from sklearn.metrics import _dist_metrics as dist_metrics
from sklearn.svm._base import BaseLibSVM
from sklearn.tree._classes import BaseDecisionTree
from sklearn.tree._tree import Tree

from infra.compiled import ONNX_FILE, ONNX_HASH_KEY, RUNTIME_ONNX, SERVING_KEY, CompiledModel

log = logging.getLogger(__name__)

MODEL_FILE = "model.skops"
METADATA_FILE = "metadata.json"
HASH_KEY = "model_sha256"
"""Key of ``metadata.json`` holding the SHA-256 of the verified ``model.skops``."""
TRAINING_CSV_FILE = "training.csv"
TRAINING_CSV_HASH_KEY = "training_csv_sha256"
"""Key of ``metadata.json`` holding the SHA-256 of the CSV a version was trained on (kept so the
version can be retrained, issue 15)."""

_VERSION_ID = re.compile(r"^[A-Za-z0-9._-]+$")


def _name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


ALLOWED_CLASSES: tuple[type, ...] = (
    # Composition and preprocessing.
    pipeline.Pipeline,
    pipeline.FeatureUnion,
    compose.ColumnTransformer,
    # Only as the identity a fitted ``"passthrough"`` becomes: ``check_content`` refuses any
    # with a function (and no function can be written in an allowed file anyway).
    preprocessing.FunctionTransformer,
    impute.SimpleImputer,
    impute.MissingIndicator,
    impute.KNNImputer,
    preprocessing.StandardScaler,
    preprocessing.MinMaxScaler,
    preprocessing.RobustScaler,
    preprocessing.MaxAbsScaler,
    preprocessing.Normalizer,
    preprocessing.Binarizer,
    preprocessing.PolynomialFeatures,
    preprocessing.OneHotEncoder,
    preprocessing.OrdinalEncoder,
    preprocessing.LabelEncoder,
    preprocessing.LabelBinarizer,
    decomposition.PCA,
    decomposition.TruncatedSVD,
    # Linear models.
    linear_model.LogisticRegression,
    linear_model.LinearRegression,
    linear_model.Ridge,
    linear_model.RidgeClassifier,
    linear_model.Lasso,
    linear_model.ElasticNet,
    linear_model.SGDClassifier,
    linear_model.SGDRegressor,
    linear_model.Perceptron,
    sgd_loss.Hinge,
    sgd_loss.SquaredHinge,
    sgd_loss.ModifiedHuber,
    sgd_loss.EpsilonInsensitive,
    sgd_loss.SquaredEpsilonInsensitive,
    # Trees and ensembles (HistGradientBoosting is left out: skops itself distrusts its
    # TreePredictor, whose node arrays scikit-learn indexes without bounds checks).
    tree.DecisionTreeClassifier,
    tree.DecisionTreeRegressor,
    tree.ExtraTreeClassifier,
    tree.ExtraTreeRegressor,
    Tree,
    ensemble.RandomForestClassifier,
    ensemble.RandomForestRegressor,
    ensemble.ExtraTreesClassifier,
    ensemble.ExtraTreesRegressor,
    ensemble.GradientBoostingClassifier,
    ensemble.GradientBoostingRegressor,
    ensemble.AdaBoostClassifier,
    ensemble.AdaBoostRegressor,
    ensemble.BaggingClassifier,
    ensemble.BaggingRegressor,
    dummy.DummyClassifier,
    dummy.DummyRegressor,
    # Losses and links the gradient-boosting and linear models keep.
    loss_link.IdentityLink,
    loss_link.Interval,
    loss_link.LogitLink,
    loss_link.HalfLogitLink,
    loss_link.LogLink,
    loss_link.MultinomialLogit,
    py_loss.HalfBinomialLoss,
    py_loss.HalfMultinomialLoss,
    py_loss.HalfSquaredError,
    py_loss.AbsoluteError,
    py_loss.HuberLoss,
    py_loss.PinballLoss,
    py_loss.ExponentialLoss,
    cy_loss.CyHalfBinomialLoss,
    cy_loss.CyHalfMultinomialLoss,
    cy_loss.CyHalfSquaredError,
    cy_loss.CyAbsoluteError,
    cy_loss.CyHuberLoss,
    cy_loss.CyPinballLoss,
    cy_loss.CyExponentialLoss,
    # Support vector machines, neighbours, naive Bayes.
    svm.SVC,
    svm.SVR,
    svm.NuSVC,
    svm.NuSVR,
    svm.LinearSVC,
    svm.LinearSVR,
    neighbors.KNeighborsClassifier,
    neighbors.KNeighborsRegressor,
    neighbors.KDTree,
    neighbors.BallTree,
    dist_metrics.EuclideanDistance64,
    dist_metrics.ManhattanDistance64,
    dist_metrics.MinkowskiDistance64,
    dist_metrics.ChebyshevDistance64,
    naive_bayes.GaussianNB,
    naive_bayes.MultinomialNB,
    naive_bayes.BernoulliNB,
    naive_bayes.ComplementNB,
    naive_bayes.CategoricalNB,
    # What they hold.
    np.random.RandomState,
    sp.csr_matrix,
    sp.csc_matrix,
    sp.coo_matrix,
    sp.csr_array,
    sp.csc_array,
)
"""Every class an uploaded or stored model may be built from (estimators and their parts)."""

VALUE_TYPES: frozenset[str] = frozenset(
    [
        "builtins.dict",
        "builtins.list",
        "builtins.tuple",
        "builtins.set",
        "builtins.str",
        "builtins.int",
        "builtins.float",
        "builtins.bool",
        "builtins.slice",
        "builtins.bytes",
        "numpy.ndarray",
        "numpy.dtype",
    ]
    + [
        _name(t)
        for t in (
            np.bool_,
            np.int8,
            np.int16,
            np.int32,
            np.int64,
            np.uint8,
            np.uint16,
            np.uint32,
            np.uint64,
            np.float16,
            np.float32,
            np.float64,
            np.str_,
            np.bytes_,
        )
    ]
)
"""Containers, primitives and numpy scalar types (also what a type reference may name)."""

ALLOWED_TYPES: frozenset[str] = frozenset(_name(c) for c in ALLOWED_CLASSES) | VALUE_TYPES
"""The exact allow-list: fully qualified names, compared whole, never as prefixes."""

ALLOWED_LOADERS: frozenset[str] = frozenset(
    [
        "DictNode",
        "ListNode",
        "TupleNode",
        "SetNode",
        "SliceNode",
        "JsonNode",
        "BytesNode",
        "TypeNode",
        "DTypeNode",
        "NdArrayNode",
        "RandomStateNode",
        "SparseMatrixNode",
        "ObjectNode",
        "TreeNode",
        "LossNode",
        "CachedNode",
    ]
)
"""skops node kinds a model needs. Left out on purpose: functions, partials, methods, operator
functions, ufuncs, ``ConstructorFromReduceNode`` (calls the named callable with arguments from
the file), default dicts and bit generators."""


@dataclass(frozen=True)
class ArchiveLimits:
    """Bounds on a skops zip archive, checked from its central directory before expansion."""

    max_entries: int = 50_000
    max_uncompressed_bytes: int = 1024 * 1024 * 1024
    max_schema_bytes: int = 128 * 1024 * 1024
    max_nodes: int = 2_000_000
    """Schema nodes and, after loading, objects walked by ``check_content``."""


STORE_LIMITS = ArchiveLimits(
    max_entries=1_000_000,
    max_uncompressed_bytes=64 * 1024**3,
    max_schema_bytes=4 * 1024**3,
    max_nodes=200_000_000,
)
"""Bounds when loading a store entry: its recorded hash already vouches for it (verified under
``ArchiveLimits()`` if uploaded, or trained here), so these only stop the absurd."""


class ModelStoreError(Exception):
    """Base of every model store failure."""


class InvalidVersionIdError(ModelStoreError, ValueError):
    """A version id that is not safe as a folder name."""


class ModelNotFoundError(ModelStoreError, LookupError):
    """No saved model under this version id."""


class InvalidModelError(ModelStoreError):
    """The file is not a readable skops artifact, or its content is inconsistent."""


class ArchiveTooLargeError(InvalidModelError):
    """The archive is over one of ``ArchiveLimits``; it is refused before being expanded."""

    def __init__(self, message: str, details: dict[str, Any]) -> None:
        super().__init__(message)
        self.details = details


class UntrustedModelError(ModelStoreError):
    """The artifact contains types outside the allow-list; it is refused, never loaded."""

    def __init__(self, untrusted_types: list[str]) -> None:
        self.untrusted_types = sorted(untrusted_types)
        super().__init__("model contains untrusted types: " + ", ".join(self.untrusted_types))


class UnverifiedModelError(ModelStoreError):
    """A stored artifact with no recorded verification, or whose bytes changed since."""


@dataclass
class LoadedModel:
    """A model version loaded in memory with its metadata and artifact size."""

    version_id: str
    estimator: Any
    metadata: dict[str, Any] = field(default_factory=dict)
    size_bytes: int = 0
    compiled: CompiledModel | None = None
    """The verified ONNX conversion that answers like ``estimator`` (None: scikit-learn serves)."""


def validate_version_id(version_id: str) -> str:
    """Return the id if it is safe as a folder name (``[A-Za-z0-9._-]+``, not ``.``/``..``)."""
    if not _VERSION_ID.match(version_id) or version_id in {".", ".."}:
        raise InvalidVersionIdError(f"invalid model version id {version_id!r}")
    return version_id


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --- the archive ------------------------------------------------------------------------------

_EOCD = struct.Struct("<4s4H2LH")
_EOCD_SIGNATURE = b"PK\x05\x06"


def _declared_entries(data: bytes) -> int:
    """Entry count from the end-of-central-directory record, before zipfile reads any entry."""
    tail_start = max(0, len(data) - (_EOCD.size + 65535))
    at = data.rfind(_EOCD_SIGNATURE, tail_start)
    if at < 0 or at + _EOCD.size > len(data):
        raise InvalidModelError("not a skops file: no zip central directory")
    _sig, _disk, _cd_disk, _disk_entries, total_entries, _size, _offset, _comment = _EOCD.unpack(
        data[at : at + _EOCD.size]
    )
    if total_entries == 0xFFFF:
        raise ArchiveTooLargeError(
            "the model archive has too many entries (ZIP64)", {"entries": "more than 65534"}
        )
    return int(total_entries)


def check_archive(data: bytes, limits: ArchiveLimits) -> None:
    """Refuse an archive over ``limits`` using only its central directory (nothing expanded)."""
    entries = _declared_entries(data)
    if entries > limits.max_entries:
        raise ArchiveTooLargeError(
            f"the model archive has {entries} entries; at most {limits.max_entries} are accepted",
            {"entries": entries, "max_entries": limits.max_entries},
        )
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            infos = archive.infolist()
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise InvalidModelError(f"not a skops file: {exc}") from exc
    if len(infos) > limits.max_entries:
        raise ArchiveTooLargeError(
            f"the model archive has {len(infos)} entries; "
            f"at most {limits.max_entries} are accepted",
            {"entries": len(infos), "max_entries": limits.max_entries},
        )
    total = sum(info.file_size for info in infos)
    if total > limits.max_uncompressed_bytes:
        raise ArchiveTooLargeError(
            f"the model archive expands to {total} bytes; "
            f"at most {limits.max_uncompressed_bytes} are accepted",
            {"uncompressed_bytes": total, "max_uncompressed_bytes": limits.max_uncompressed_bytes},
        )
    schemas = [info for info in infos if info.filename == "schema.json"]
    if len(schemas) != 1:
        raise InvalidModelError("not a skops file: it needs exactly one schema.json")
    if schemas[0].file_size > limits.max_schema_bytes:
        raise ArchiveTooLargeError(
            f"the model's schema.json expands to {schemas[0].file_size} bytes; "
            f"at most {limits.max_schema_bytes} are accepted",
            {"schema_bytes": schemas[0].file_size, "max_schema_bytes": limits.max_schema_bytes},
        )


# --- the types in the schema ------------------------------------------------------------------


def _nodes(schema: Any, max_nodes: int) -> Iterator[dict[str, Any]]:
    """Every skops node (a dict with ``__loader__``) anywhere in the schema, iteratively."""
    stack = [schema]
    seen = 0
    while stack:
        item = stack.pop()
        seen += 1
        if seen > max_nodes:
            raise ArchiveTooLargeError(
                f"the model's schema has more than {max_nodes} values",
                {"max_nodes": max_nodes},
            )
        if isinstance(item, dict):
            if "__loader__" in item:
                yield item
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def refused_types(data: bytes, limits: ArchiveLimits) -> list[str]:
    """Types or loaders in a (size-checked) skops archive that the allow-list refuses."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            schema = orjson.loads(archive.read("schema.json"))
    except orjson.JSONDecodeError as exc:
        if "memory" in str(exc).lower():  # orjson's way of saying MemoryError
            raise MemoryError(str(exc)) from None
        raise InvalidModelError(f"not a skops file: {exc}") from exc
    except (zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise InvalidModelError(f"not a skops file: {exc}") from exc
    refused: set[str] = set()
    for node in _nodes(schema, limits.max_nodes):
        loader = node.get("__loader__")
        if loader == "CachedNode":
            continue  # a reference to a node checked where it is defined
        type_name = f"{node.get('__module__')}.{node.get('__class__')}"
        if not isinstance(loader, str) or loader not in ALLOWED_LOADERS:
            refused.add(f"{type_name} (loaded by {loader})")
        elif loader == "TypeNode" and type_name not in VALUE_TYPES:
            refused.add(f"{type_name} (as a type reference)")
        elif type_name not in ALLOWED_TYPES:
            refused.add(type_name)
    return sorted(refused)


def check_types(data: bytes, limits: ArchiveLimits) -> None:
    """Refuse (``UntrustedModelError``) a skops archive with anything outside the allow-list."""
    refused = refused_types(data, limits)
    if refused:
        raise UntrustedModelError(refused)


# --- the content, once loaded -----------------------------------------------------------------


def _objects(root: Any, max_nodes: int) -> Iterator[tuple[Any, Any]]:
    """Every object reachable from ``root`` (with the object holding it), each once."""
    stack: list[tuple[Any, Any]] = [(root, None)]
    seen: set[int] = set()
    while stack:
        item, owner = stack.pop()
        if id(item) in seen or isinstance(item, (str, bytes, int, float, bool, type(None))):
            continue
        seen.add(id(item))
        if len(seen) > max_nodes:
            raise ArchiveTooLargeError(
                f"the model holds more than {max_nodes} objects", {"max_nodes": max_nodes}
            )
        yield item, owner
        if isinstance(item, dict):
            stack.extend((v, owner) for v in item.values())
        elif isinstance(item, (list, tuple, set)):
            stack.extend((v, owner) for v in item)
        elif isinstance(item, np.ndarray):
            if item.dtype == object:
                stack.extend((v, owner) for v in item.ravel())
        elif hasattr(item, "__dict__"):
            stack.extend((v, item) for v in vars(item).values())
            if isinstance(item, BaseDecisionTree) and hasattr(item, "tree_"):
                stack.append((item.tree_, item))


def _check_tree(t: Any, owner: Any) -> None:
    """A decision tree whose nodes point inside it, forward only, at existing features."""
    n = int(t.node_count)
    left, right = np.asarray(t.children_left), np.asarray(t.children_right)
    features = np.asarray(t.feature)
    if n <= 0 or n > int(t.capacity) or len(left) != n or len(right) != n:
        raise InvalidModelError("inconsistent decision tree: node count")
    n_features = int(t.n_features)
    if isinstance(owner, BaseDecisionTree) and hasattr(owner, "n_features_in_"):
        if int(owner.n_features_in_) != n_features:
            raise InvalidModelError("inconsistent decision tree: feature count")
    index = np.arange(n)
    leaf = left == -1
    if not np.array_equal(leaf, right == -1):
        raise InvalidModelError("inconsistent decision tree: half-leaf node")
    inner = ~leaf
    if np.any(left[inner] <= index[inner]) or np.any(right[inner] <= index[inner]):
        raise InvalidModelError("inconsistent decision tree: a child before its parent")
    if np.any(left[inner] >= n) or np.any(right[inner] >= n):
        raise InvalidModelError("inconsistent decision tree: a child outside the tree")
    if np.any(features[inner] < 0) or np.any(features[inner] >= n_features):
        raise InvalidModelError("inconsistent decision tree: a split on a missing feature")


def _check_libsvm(model: Any) -> None:
    """A libsvm model whose support vectors, coefficients and counts agree."""
    if not hasattr(model, "support_vectors_"):
        return
    n_support = np.asarray(model._n_support)
    vectors = model.support_vectors_
    dual = model._dual_coef_
    n_sv = vectors.shape[0]
    n_class = len(n_support)
    expected_intercepts = max(1, n_class * (n_class - 1) // 2)
    if (
        np.any(n_support < 0)
        or int(n_support.sum()) != n_sv
        or len(model.support_) != n_sv
        or dual.shape[1] != n_sv
        or dual.shape[0] != max(1, n_class - 1)
        or len(np.ravel(model._intercept_)) != expected_intercepts
        or np.any(np.asarray(model.support_) < 0)
        or vectors.shape[1] != int(getattr(model, "n_features_in_", vectors.shape[1]))
    ):
        raise InvalidModelError("inconsistent support vector model")


def _check_binary_tree(t: Any) -> None:
    """A KD or ball tree whose index and node arrays stay inside its data."""
    state = t.__getstate__()
    data, idx, node_data, node_bounds = (np.asarray(a) for a in state[:4])
    n_levels, n_nodes = int(state[5]), int(state[6])
    n_samples = data.shape[0]
    if n_nodes != len(node_data) or n_levels < 1 or n_levels > 64 or n_nodes != 2**n_levels - 1:
        raise InvalidModelError("inconsistent neighbours tree: node count")
    if len(idx) != n_samples or not np.array_equal(np.sort(idx), np.arange(n_samples)):
        raise InvalidModelError("inconsistent neighbours tree: index array")
    starts, ends, is_leaf = node_data["idx_start"], node_data["idx_end"], node_data["is_leaf"]
    if np.any(starts < 0) or np.any(ends > n_samples) or np.any(starts > ends):
        raise InvalidModelError("inconsistent neighbours tree: node ranges")
    inner = np.flatnonzero(is_leaf == 0)
    if np.any(2 * inner + 2 >= n_nodes):
        raise InvalidModelError("inconsistent neighbours tree: a node's children are missing")
    if node_bounds.shape[-1] != data.shape[1] or node_bounds.shape[1] != n_nodes:
        raise InvalidModelError("inconsistent neighbours tree: bounds")


def check_content(estimator: Any, limits: ArchiveLimits) -> None:
    """Refuse a loaded model whose arrays scikit-learn would index out of bounds, or that would
    run a function or start parallel workers when it predicts."""
    for item, owner in _objects(estimator, limits.max_nodes):
        if isinstance(item, Tree):
            _check_tree(item, owner)
        elif isinstance(item, (neighbors.KDTree, neighbors.BallTree)):
            _check_binary_tree(item)
        elif isinstance(item, BaseLibSVM):
            _check_libsvm(item)
        elif isinstance(item, preprocessing.FunctionTransformer):
            if item.func is not None or item.inverse_func is not None:
                raise UntrustedModelError([f"{_name(type(item))} with a function"])
        if hasattr(item, "__dict__") and not isinstance(item, type):
            n_jobs = vars(item).get("n_jobs")
            if n_jobs is not None and n_jobs != 1:
                raise InvalidModelError(
                    f"{type(item).__name__} asks for n_jobs={n_jobs!r}; "
                    "models must predict in one process (n_jobs None or 1)"
                )


def load_checked(data: bytes, limits: ArchiveLimits) -> Any:
    """Check the archive, its types and the loaded content; return the estimator."""
    check_archive(data, limits)
    check_types(data, limits)
    try:
        estimator = sio.loads(data, trusted=sorted(ALLOWED_TYPES))
    except (MemoryError, RecursionError):
        raise
    except Exception as exc:
        raise InvalidModelError(f"cannot load the skops file: {exc}") from exc
    try:
        check_content(estimator, limits)
    except ModelStoreError:
        raise
    except Exception as exc:
        raise InvalidModelError(f"inconsistent model: {exc}") from exc
    return estimator


def _estimator_type(estimator: Any) -> str | None:
    """``classifier`` or ``regressor`` as scikit-learn's tags say (``None`` otherwise)."""
    try:
        if is_classifier(estimator):
            return "classifier"
        if is_regressor(estimator):
            return "regressor"
    except Exception:
        return None
    return None


def _encoder_categories(estimator: Any) -> dict[str, list[str]]:
    """Categories per input column of the one-hot or ordinal encoders a ``ColumnTransformer``
    (the model itself or a pipeline's first step) applies to named columns; ``{}`` otherwise."""
    first = estimator
    while isinstance(first, pipeline.Pipeline) and first.steps:
        first = first.steps[0][1]
    if not isinstance(first, compose.ColumnTransformer):
        return {}
    found: dict[str, list[str]] = {}
    for _name, transformer, columns in getattr(first, "transformers_", []):
        if not isinstance(columns, (list, tuple, np.ndarray)):
            continue
        names = [c for c in columns if isinstance(c, str)]
        if len(names) != len(columns):
            continue
        parts = (
            transformer.steps if isinstance(transformer, pipeline.Pipeline) else [(0, transformer)]
        )
        for _step, part in parts:
            if isinstance(part, (preprocessing.OneHotEncoder, preprocessing.OrdinalEncoder)):
                categories = getattr(part, "categories_", None)
                if categories is not None and len(categories) == len(names):
                    for column, values in zip(names, categories, strict=True):
                        found[column] = [
                            str(v) for v in values if not (isinstance(v, float) and v != v)
                        ]
                break
    return found


encoder_categories = _encoder_categories


def describe(estimator: Any) -> dict[str, Any]:
    """The plain facts about a loaded model that the catalogue records (JSON-safe), with its
    estimator type and the categories its encoders learnt (what the upload form proposes)."""
    classes = getattr(estimator, "classes_", None)
    n_features = getattr(estimator, "n_features_in_", None)
    names = getattr(estimator, "feature_names_in_", None)
    try:
        categories = _encoder_categories(estimator)
    except Exception:
        categories = {}
    return {
        "algorithm": type(estimator).__name__,
        "has_predict": callable(getattr(estimator, "predict", None)),
        "has_predict_proba": hasattr(estimator, "predict_proba"),
        "classes": [str(c) for c in classes] if classes is not None else None,
        "n_features_in": int(n_features) if n_features is not None else None,
        "feature_names_in": [str(n) for n in names] if names is not None else None,
        "estimator_type": _estimator_type(estimator),
        "categories": categories,
    }


def verify_model_file(path: str, limits: dict[str, int]) -> dict[str, Any]:
    """Child-process entry (``infra.sandbox.run_limited``): check and load an untrusted file.

    Returns ``{"model": describe(...), "sha256": ...}`` or ``{"refused": {...}}``; the estimator
    itself never leaves the child.
    """
    bounds = ArchiveLimits(**limits)
    data = Path(path).read_bytes()
    try:
        estimator = load_checked(data, bounds)
    except UntrustedModelError as exc:
        return {"refused": {"reason": "untrusted_types", "untrusted_types": exc.untrusted_types}}
    except ArchiveTooLargeError as exc:
        return {"refused": {"reason": "too_large", "message": str(exc), "details": exc.details}}
    except InvalidModelError as exc:
        return {"refused": {"reason": "invalid", "message": str(exc)}}
    return {"model": describe(estimator), "sha256": sha256_of(data)}


def with_onnx_hash(metadata: dict[str, Any], onnx: bytes | None) -> dict[str, Any]:
    """``metadata`` whose serving record carries the SHA-256 of ``onnx`` (or none)."""
    serving = metadata.get(SERVING_KEY)
    if not isinstance(serving, dict):
        return metadata
    serving = {k: v for k, v in serving.items() if k != ONNX_HASH_KEY}
    if onnx is not None:
        serving[ONNX_HASH_KEY] = sha256_of(onnx)
    return {**metadata, SERVING_KEY: serving}


def limits_dict(limits: ArchiveLimits) -> dict[str, int]:
    return asdict(limits)


# --- the store --------------------------------------------------------------------------------


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_bytes(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def _write_private(path: Path, data: bytes) -> None:
    """Write a new file created 0600 (a user's data: only the service reads it)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(data)


class ModelStore:
    """Saves and loads model versions under ``root``; safe to share between processes."""

    def __init__(self, root: Path, limits: ArchiveLimits | None = None) -> None:
        self.root = Path(root)
        self.limits = limits or STORE_LIMITS

    def path_of(self, version_id: str) -> Path:
        return self.root / validate_version_id(version_id)

    def save(
        self,
        version_id: str,
        estimator: Any,
        metadata: dict[str, Any],
        onnx: bytes | None = None,
        training_csv: bytes | None = None,
    ) -> Path:
        """Write a model trained by this service, with its hash recorded, atomically.

        ``estimator`` is the fitted object, or the ``Path`` of a skops file a training process
        wrote (copied in as is: the parent never loads it); ``onnx`` its checked conversion;
        ``training_csv`` the CSV it was trained on, kept (with its hash) to train it again.
        """
        data = estimator.read_bytes() if isinstance(estimator, Path) else sio.dumps(estimator)
        return self._save(version_id, data, metadata, onnx, training_csv)

    @staticmethod
    def save_to_file(estimator: Any, path: Path) -> None:
        """Write a fitted estimator as a skops file (what a training process writes)."""
        path.write_bytes(sio.dumps(estimator))

    def save_verified(
        self, version_id: str, data: bytes, metadata: dict[str, Any], onnx: bytes | None = None
    ) -> Path:
        """Write the bytes of an uploaded file that ``verify_model_file`` accepted."""
        return self._save(version_id, data, metadata, onnx)

    def _save(
        self,
        version_id: str,
        data: bytes,
        metadata: dict[str, Any],
        onnx: bytes | None = None,
        training_csv: bytes | None = None,
    ) -> Path:
        """Write ``model.skops``, ``metadata.json`` (with the hash) and, when the version was
        compiled, ``model.onnx`` (its hash in the serving record) into ``{root}/{id}``; and,
        when given, ``training.csv`` (0600, its hash in the metadata)."""
        target = self.path_of(version_id)
        self.root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{version_id}.", dir=self.root))
        try:
            (staging / MODEL_FILE).write_bytes(data)
            metadata = with_onnx_hash(metadata, onnx)
            if onnx is not None:
                (staging / ONNX_FILE).write_bytes(onnx)
            if training_csv is not None:
                _write_private(staging / TRAINING_CSV_FILE, training_csv)
                metadata = {**metadata, TRAINING_CSV_HASH_KEY: sha256_of(training_csv)}
            _write_json(staging / METADATA_FILE, {**metadata, HASH_KEY: sha256_of(data)})
            if target.exists():
                # Replacing a version: move the old one aside first so the rename stays atomic.
                old = Path(tempfile.mkdtemp(prefix=f".{version_id}.old.", dir=self.root))
                os.replace(target, old / "v")
                os.replace(staging, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target

    def metadata(self, version_id: str) -> dict[str, Any]:
        """The version's ``metadata.json`` (``{}`` if absent or unreadable)."""
        path = self.path_of(version_id) / METADATA_FILE
        try:
            loaded = orjson.loads(path.read_bytes())
        except (OSError, orjson.JSONDecodeError):
            return {}
        return loaded if isinstance(loaded, dict) else {}

    def record_verified(self, version_id: str, sha256: str) -> None:
        """Record the hash of a version's file verified after the fact (atomic rewrite)."""
        folder = self.path_of(version_id)
        metadata = {**self.metadata(version_id), HASH_KEY: sha256}
        fd, staging = tempfile.mkstemp(prefix=f".{METADATA_FILE}.", dir=folder)
        os.close(fd)
        try:
            _write_json(Path(staging), metadata)
            os.replace(staging, folder / METADATA_FILE)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise

    def record_compiled(self, version_id: str, serving: dict[str, Any], onnx: bytes | None) -> None:
        """Record how an existing version is served, writing its ``model.onnx`` first."""
        folder = self.path_of(version_id)
        metadata = with_onnx_hash({**self.metadata(version_id), SERVING_KEY: serving}, onnx)
        if onnx is not None:
            fd, onnx_staging = tempfile.mkstemp(prefix=f".{ONNX_FILE}.", dir=folder)
            os.close(fd)
            try:
                Path(onnx_staging).write_bytes(onnx)
                os.replace(onnx_staging, folder / ONNX_FILE)
            except BaseException:
                Path(onnx_staging).unlink(missing_ok=True)
                raise
        fd, staging = tempfile.mkstemp(prefix=f".{METADATA_FILE}.", dir=folder)
        os.close(fd)
        try:
            _write_json(Path(staging), metadata)
            os.replace(staging, folder / METADATA_FILE)
        except BaseException:
            Path(staging).unlink(missing_ok=True)
            raise

    def uncompiled(self) -> list[str]:
        """Verified versions with no serving record (saved before compiled inference)."""
        if not self.root.is_dir():
            return []
        found = []
        for p in sorted(self.root.iterdir()):
            if p.name.startswith(".") or not _VERSION_ID.match(p.name):
                continue
            metadata = self.metadata(p.name)
            if metadata.get(HASH_KEY) and SERVING_KEY not in metadata:
                found.append(p.name)
        return found

    def unverified(self) -> list[str]:
        """Versions whose metadata records no hash (saved before hashes were recorded)."""
        if not self.root.is_dir():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if not p.name.startswith(".")
            and _VERSION_ID.match(p.name)
            and (p / MODEL_FILE).is_file()
            and not self.metadata(p.name).get(HASH_KEY)
        )

    def load(self, version_id: str) -> LoadedModel:
        """Load a version verified by management-api: its bytes must match the recorded hash,
        and pass the same archive, type and content checks as an upload."""
        folder = self.path_of(version_id)
        model_path = folder / MODEL_FILE
        if not model_path.is_file():
            raise ModelNotFoundError(f"no model saved under version {version_id!r}")
        metadata = self.metadata(version_id)
        recorded = metadata.get(HASH_KEY)
        if not isinstance(recorded, str) or not recorded:
            raise UnverifiedModelError(
                f"model version {version_id!r} has no recorded verification; "
                "management-api verifies stored models when it starts"
            )
        data = model_path.read_bytes()  # hash and load the same bytes: no swap in between
        if sha256_of(data) != recorded:
            raise UnverifiedModelError(
                f"model version {version_id!r} does not match the file management-api verified "
                "(changed since); refusing to load it"
            )
        estimator = load_checked(data, self.limits)
        return LoadedModel(
            version_id=version_id,
            estimator=estimator,
            metadata=metadata,
            size_bytes=len(data),
            compiled=self._compiled(folder, version_id, metadata, estimator),
        )

    def with_serving_record(self, model: LoadedModel) -> LoadedModel | None:
        """``model`` as it is served now that its version has a serving record (written by
        management-api when it compiled a version saved before compiled inference): with its ONNX
        session when onnxruntime agreed and the file matches its hash. ``None`` while the version
        still has no record. The estimator (and its verified skops bytes) stays as loaded."""
        metadata = self.metadata(model.version_id)
        if not isinstance(metadata.get(SERVING_KEY), dict):
            return None
        folder = self.path_of(model.version_id)
        return LoadedModel(
            version_id=model.version_id,
            estimator=model.estimator,
            metadata=metadata,
            size_bytes=model.size_bytes,
            compiled=self._compiled(folder, model.version_id, metadata, model.estimator),
        )

    @staticmethod
    def _compiled(
        folder: Path, version_id: str, metadata: dict[str, Any], estimator: Any
    ) -> CompiledModel | None:
        """The version's ONNX session when its serving record says onnxruntime agreed and the
        file's bytes match the recorded hash; ``None`` (scikit-learn serves) otherwise."""
        serving = metadata.get(SERVING_KEY)
        if not isinstance(serving, dict) or serving.get("runtime") != RUNTIME_ONNX:
            return None
        recorded = serving.get(ONNX_HASH_KEY)
        try:
            data = (folder / ONNX_FILE).read_bytes()
        except OSError as exc:
            log.warning(
                "model version %s: no readable %s (%s); serving it with scikit-learn",
                version_id,
                ONNX_FILE,
                exc,
            )
            return None
        if not isinstance(recorded, str) or sha256_of(data) != recorded:
            log.warning(
                "model version %s: %s does not match its recorded hash; serving it "
                "with scikit-learn",
                version_id,
                ONNX_FILE,
            )
            return None
        try:
            compiled = CompiledModel.of(data, serving["layout"], hasattr(estimator, "classes_"))
        except Exception as exc:
            log.warning(
                "model version %s: cannot open %s (%s); serving it with scikit-learn",
                version_id,
                ONNX_FILE,
                exc,
            )
            return None
        compiled.size_bytes = len(data)
        return compiled

    def training_csv(self, version_id: str) -> bytes | None:
        """The CSV a version was trained on, if kept (``None``: saved without one); a kept CSV
        whose bytes no longer match the recorded hash (or that is gone) is refused."""
        recorded = self.metadata(version_id).get(TRAINING_CSV_HASH_KEY)
        if not isinstance(recorded, str) or not recorded:
            return None
        try:
            data = (self.path_of(version_id) / TRAINING_CSV_FILE).read_bytes()
        except OSError as exc:
            raise UnverifiedModelError(
                f"the training CSV kept for model version {version_id!r} cannot be read ({exc})"
            ) from exc
        if sha256_of(data) != recorded:
            raise UnverifiedModelError(
                f"the training CSV kept for model version {version_id!r} does not match the one "
                "it was trained on (changed since); refusing to use it"
            )
        return data

    def exists(self, version_id: str) -> bool:
        return (self.path_of(version_id) / MODEL_FILE).is_file()

    def delete(self, version_id: str) -> None:
        """Remove a version (no error if it is already gone)."""
        target = self.path_of(version_id)
        if not target.exists():
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{version_id}.del.", dir=self.root))
        os.replace(target, trash / "v")
        shutil.rmtree(trash, ignore_errors=True)
