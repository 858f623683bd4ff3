"""The model store saves atomically and loads only verified skops artifacts built from an exact
allow-list of classes, after bounding their archive and checking what scikit-learn indexes."""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.base import BaseEstimator
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, StandardScaler
from sklearn.tree import DecisionTreeClassifier
from sklearn.tree._tree import Tree

from infra.model_store import (
    ALLOWED_TYPES,
    HASH_KEY,
    METADATA_FILE,
    MODEL_FILE,
    ArchiveLimits,
    ArchiveTooLargeError,
    InvalidModelError,
    InvalidVersionIdError,
    ModelNotFoundError,
    ModelStore,
    UntrustedModelError,
    UnverifiedModelError,
    check_archive,
    check_types,
    load_checked,
    refused_types,
    verify_model_file,
)
from management_api.algorithms import ALGORITHMS
from management_api.fitting import train
from predictor.engine import BatchPredictor, ModelCache
from schemas import ErrorCode, Task

LIMITS = ArchiveLimits()
RUNSTRING = "numpy.testing._private.utils.runstring"


class SneakyEstimator(BaseEstimator):  # type: ignore[misc]
    """A user-defined class: skops must not import it on load."""

    def predict(self, X):
        return np.zeros(len(X))


def crafted_runstring_file(marker: Path) -> bytes:
    """A skops file whose root makes skops call ``numpy.testing...runstring(code, {})``: the
    code writes ``marker``. Built the way an attacker would, by editing schema.json."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    with zipfile.ZipFile(io.BytesIO(sio.dumps((code, {})))) as archive:
        args = json.loads(archive.read("schema.json"))
    root = {
        "__class__": "runstring",
        "__module__": "numpy.testing._private.utils",
        "__loader__": "ConstructorFromReduceNode",
        "content": {k: v for k, v in args.items() if k not in ("protocol", "_skops_version")},
        "protocol": args["protocol"],
        "_skops_version": args.get("_skops_version"),
    }
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps(root))
    return out.getvalue()


def zip_bomb(schema_bytes: int) -> bytes:
    """A valid zip whose schema.json is ``schema_bytes`` of spaces, deflated to a sliver."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        with archive.open("schema.json", "w", force_zip64=True) as entry:
            chunk = b" " * (1024 * 1024)
            for _ in range(schema_bytes // len(chunk)):
                entry.write(chunk)
    return out.getvalue()


def upload_pipeline() -> Pipeline:
    """What users typically upload: imputer + scaler, one-hot, a ColumnTransformer, a model."""
    frame = pd.DataFrame(
        {
            "size": [1.0, 2.0, np.nan, 4.0, 5.0, 6.0],
            "color": ["red", "blue", "red", None, "blue", "red"],
            "rest": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],
        }
    )
    numeric = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    categories = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", OneHotEncoder(handle_unknown="ignore")),
        ]
    )
    encode = ColumnTransformer(
        [("num", numeric, ["size"]), ("cat", categories, ["color"])], remainder="passthrough"
    )
    pipe = Pipeline([("encode", encode), ("model", LogisticRegression())])
    return pipe.fit(frame, [0, 1, 0, 1, 0, 1])


def test_saves_and_loads_a_pipeline_with_metadata_and_its_hash(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    path = store.save("v1", upload_pipeline(), {"task": "classification"})
    assert (path / MODEL_FILE).is_file() and (path / METADATA_FILE).is_file()
    loaded = store.load("v1")
    assert loaded.metadata["task"] == "classification"
    assert len(loaded.metadata[HASH_KEY]) == 64
    assert loaded.size_bytes > 0
    frame = pd.DataFrame({"size": [2.5], "color": ["red"], "rest": [0.3]})
    assert loaded.estimator.predict(frame).shape == (1,)
    assert store.exists("v1")
    store.delete("v1")
    assert not store.exists("v1")
    assert [p.name for p in tmp_path.iterdir()] == []


def test_saving_again_replaces_the_version(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.save("v1", upload_pipeline(), {"n": 1})
    store.save("v1", upload_pipeline(), {"n": 2})
    assert store.load("v1").metadata["n"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v1"]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", "..", "v 1"])
def test_rejects_unsafe_version_ids(tmp_path: Path, bad: str) -> None:
    with pytest.raises(InvalidVersionIdError):
        ModelStore(tmp_path).exists(bad)


def test_missing_version_raises_not_found(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError):
        ModelStore(tmp_path).load("nope")


def test_the_crafted_file_runs_code_under_the_old_prefix_trust(tmp_path: Path) -> None:
    """Proof the crafted file is live: trusting ``numpy.*`` as the old check did runs its code."""
    marker = tmp_path / "marker"
    data = crafted_runstring_file(marker)
    flagged = sio.get_untrusted_types(data=data)
    old_trusted = [t for t in flagged if t.split(".", 1)[0] in ("sklearn", "numpy", "scipy")]
    assert old_trusted == flagged == [RUNSTRING]  # the old check saw nothing untrusted
    sio.loads(data, trusted=old_trusted)
    assert marker.read_text() == "ran"


def test_refuses_the_crafted_file_before_anything_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    data = crafted_runstring_file(marker)
    with pytest.raises(UntrustedModelError) as info:
        load_checked(data, LIMITS)
    assert any(RUNSTRING in name for name in info.value.untrusted_types)
    answer = verify_model_file(str(_write(tmp_path / "evil.skops", data)), {})
    assert answer["refused"]["reason"] == "untrusted_types"
    assert not marker.exists()


def test_the_allow_list_is_exact_class_names_that_resolve_to_classes() -> None:
    """No prefix, no function: each name imports as a class, and runstring is not one."""
    assert RUNSTRING not in ALLOWED_TYPES
    assert not any(name.endswith(".") or name.endswith("*") for name in ALLOWED_TYPES)
    for name in ALLOWED_TYPES:
        module, _, qualname = name.rpartition(".")
        assert isinstance(getattr(importlib.import_module(module), qualname), type), name
    assert "sklearn.preprocessing._function_transformer.FunctionTransformer" in ALLOWED_TYPES


def test_refuses_user_defined_types_and_a_function_transformer_with_a_function(
    tmp_path: Path,
) -> None:
    with pytest.raises(UntrustedModelError) as info:
        check_types(sio.dumps(SneakyEstimator()), LIMITS)
    assert any("SneakyEstimator" in name for name in info.value.untrusted_types)
    with_function = FunctionTransformer(np.log1p).fit(np.ones((2, 2)))
    assert any("log1p" in name for name in refused_types(sio.dumps(with_function), LIMITS))
    identity = FunctionTransformer().fit(np.ones((2, 2)))
    assert load_checked(sio.dumps(identity), LIMITS).func is None


def test_the_store_refuses_an_entry_with_untrusted_types_even_with_a_hash(tmp_path: Path) -> None:
    store = ModelStore(tmp_path)
    store.save("evil", SneakyEstimator(), {})
    with pytest.raises(UntrustedModelError):
        store.load("evil")


def test_a_typical_uploaded_pipeline_passes_every_check() -> None:
    data = sio.dumps(upload_pipeline())
    assert refused_types(data, LIMITS) == []
    assert load_checked(data, LIMITS).predict(
        pd.DataFrame({"size": [1.0], "color": ["blue"], "rest": [0.0]})
    ).shape == (1,)


def catalogue_frame(task: Task, n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "num": rng.normal(size=n),
            "count": rng.integers(0, 9, n),
            "flag": rng.choice(["true", "false"], n),
            "color": rng.choice(["red", "green", "blue"], n),
        }
    )
    frame.loc[2, "num"] = np.nan
    if task == Task.CLASSIFICATION:
        frame["target"] = rng.choice(["a", "b", "c"], n)
    else:
        frame["target"] = rng.normal(size=n)
    return frame


@pytest.mark.parametrize(
    ("algorithm", "task"),
    [(name, task) for name, algo in ALGORITHMS.items() for task in algo.tasks],
)
def test_every_catalogue_algorithm_saves_and_loads_under_the_allow_list(
    tmp_path: Path, algorithm: str, task: Task
) -> None:
    params = {"n_estimators": 3} if algorithm in {"random_forest", "gradient_boosting"} else {}
    trained = train(catalogue_frame(task), "target", algorithm, params, task=task)
    store = ModelStore(tmp_path)
    store.save("v1", trained.estimator, {})
    assert refused_types((tmp_path / "v1" / MODEL_FILE).read_bytes(), LIMITS) == []
    loaded = store.load("v1")
    row = catalogue_frame(task).drop(columns=["target"]).head(2)
    row["flag"] = (row["flag"] == "true").astype(float)  # as a predictor feeds booleans
    assert len(loaded.estimator.predict(row)) == 2


def test_refuses_an_entry_without_a_recorded_hash_until_it_is_verified(tmp_path: Path) -> None:
    """An entry from before hashes were recorded is refused; recording its hash admits it."""
    folder = tmp_path / "old"
    folder.mkdir()
    data = sio.dumps(upload_pipeline())
    (folder / MODEL_FILE).write_bytes(data)
    (folder / METADATA_FILE).write_text('{"task": "classification"}')
    store = ModelStore(tmp_path)
    assert store.unverified() == ["old"]
    with pytest.raises(UnverifiedModelError):
        store.load("old")
    answer = verify_model_file(str(folder / MODEL_FILE), {})
    store.record_verified("old", answer["sha256"])
    assert store.unverified() == []
    assert store.load("old").metadata["task"] == "classification"


def test_refuses_an_entry_whose_file_was_swapped_after_verification(tmp_path: Path) -> None:
    """Another skops file put in place of the verified one (even a harmless one) is refused,
    and a predictor answers the batch MODEL_UNAVAILABLE instead of crashing."""
    store = ModelStore(tmp_path)
    store.save("v1", upload_pipeline(), {})
    other = LogisticRegression().fit([[0.0], [1.0]], [0, 1])
    (tmp_path / "v1" / MODEL_FILE).write_bytes(sio.dumps(other))
    with pytest.raises(UnverifiedModelError):
        store.load("v1")
    outcome = BatchPredictor(ModelCache(store, 2)).run("v1", ["size"], [[1.0]], False)
    assert outcome.error_code == ErrorCode.MODEL_UNAVAILABLE


def test_an_archive_over_its_limits_is_refused_from_the_central_directory() -> None:
    """A 64 MiB schema deflated to a few KiB is refused without being expanded."""
    bomb = zip_bomb(64 * 1024 * 1024)
    assert len(bomb) < 1024 * 1024
    with pytest.raises(ArchiveTooLargeError) as info:
        check_archive(bomb, ArchiveLimits(max_schema_bytes=8 * 1024 * 1024))
    assert info.value.details["schema_bytes"] == 64 * 1024 * 1024
    with pytest.raises(ArchiveTooLargeError):
        check_archive(bomb, ArchiveLimits(max_uncompressed_bytes=1024 * 1024))
    many = io.BytesIO()
    with zipfile.ZipFile(many, "w") as archive:
        for i in range(30):
            archive.writestr(f"{i}.npy", b"")
        archive.writestr("schema.json", b"{}")
    with pytest.raises(ArchiveTooLargeError) as info:
        check_archive(many.getvalue(), ArchiveLimits(max_entries=10))
    assert info.value.details["entries"] == 31
    with pytest.raises(InvalidModelError):
        check_archive(b"not a zip at all", LIMITS)


def test_a_tree_pointing_outside_itself_is_refused() -> None:
    """Tree nodes are indexed without bounds checks when predicting: a crafted child index
    would read outside the tree, so the loaded content is checked."""
    model = DecisionTreeClassifier(random_state=0).fit(np.arange(20.0).reshape(10, 2), [0, 1] * 5)
    state = model.tree_.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10**6
    crafted = Tree(model.tree_.n_features, np.asarray(model.tree_.n_classes), 1)
    crafted.__setstate__({**state, "nodes": nodes})
    model.tree_ = crafted
    with pytest.raises(InvalidModelError, match="tree"):
        load_checked(sio.dumps(model), LIMITS)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    "loader",
    [
        "ConstructorFromReduceNode",
        "ObjectNode",
        "TupleNode",
        "ListNode",
        "DictNode",
        "NdArrayNode",
        "FunctionNode",
        "TypeNode",
        "MethodNode",
        "PartialNode",
    ],
)
def test_a_callable_named_through_any_loader_is_refused(loader: str) -> None:
    """skops calls the named type in many loaders; a function under any of them is refused."""
    root = {"__class__": "system", "__module__": "os", "__loader__": loader, "content": []}
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("schema.json", json.dumps({**root, "protocol": 2}))
    assert any("os.system" in name for name in refused_types(out.getvalue(), LIMITS))


def test_a_model_asking_for_parallel_workers_is_refused() -> None:
    model = upload_pipeline()
    model.set_params(encode__n_jobs=64)
    with pytest.raises(InvalidModelError, match="n_jobs"):
        load_checked(sio.dumps(model), LIMITS)


def test_support_vectors_that_disagree_with_their_counts_are_refused() -> None:
    from sklearn.svm import SVC

    model = SVC().fit(np.arange(20.0).reshape(10, 2), [0, 1] * 5)
    model._n_support = model._n_support + 5
    with pytest.raises(InvalidModelError, match="support vector"):
        load_checked(sio.dumps(model), LIMITS)


def test_a_neighbours_tree_indexing_outside_its_data_is_refused() -> None:
    from sklearn.neighbors import KNeighborsClassifier

    model = KNeighborsClassifier(algorithm="kd_tree").fit(np.random.rand(40, 3), [0, 1] * 20)
    state = list(model._tree.__getstate__())
    state[1] = state[1].copy()
    state[1][0] = 10**6
    model._tree.__setstate__(tuple(state))
    with pytest.raises(InvalidModelError, match="neighbours tree"):
        load_checked(sio.dumps(model), LIMITS)
    assert load_checked(sio.dumps(KNeighborsClassifier().fit([[0.0], [1.0]], [0, 1])), LIMITS)
