"""Pure logic of the management API: schema inference, parameters, docs examples, alerts, keys."""

from __future__ import annotations

import hashlib
import json
import shlex
from datetime import UTC, datetime

import pandas as pd
import pytest

from management_api.algorithms import resolve_params
from management_api.apidocs import build_docs
from management_api.datasets import TrainingError, infer_features, infer_task
from management_api.db import ModelVersion
from management_api.monitoring import compute_alerts, sort_apis
from management_api.security import generate_api_key, hash_api_key
from schemas import ApiStatus, FeatureType, Task
from schemas.monitoring import ApiStats, ApiSummary
from schemas.resources import AlertThresholds, ApiPublic


def test_infers_integer_number_boolean_and_category_features() -> None:
    frame = pd.DataFrame(
        {
            "n": [1, 2, 3],
            "x": [0.5, 1.5, None],
            "flag": ["true", "False", "true"],
            "city": ["a", "b", None],
        }
    )
    _, specs = infer_features(frame)
    kinds = {s.name: (s.type, s.required, s.categories) for s in specs}
    assert kinds == {
        "n": (FeatureType.INTEGER, True, None),
        "x": (FeatureType.NUMBER, False, None),
        "flag": (FeatureType.BOOLEAN, True, None),
        "city": (FeatureType.CATEGORY, False, ["a", "b"]),
    }


def test_task_inference() -> None:
    assert infer_task(pd.Series(["a", "b"] * 20)) == Task.CLASSIFICATION
    assert infer_task(pd.Series([0, 1, 2] * 20)) == Task.CLASSIFICATION
    assert infer_task(pd.Series([x / 7 for x in range(100)])) == Task.REGRESSION


def test_params_are_coerced_and_bad_ones_named() -> None:
    _, params = resolve_params("random_forest", Task.REGRESSION, {"n_estimators": "50"})
    assert params["n_estimators"] == 50 and params["min_samples_leaf"] == 1
    with pytest.raises(TrainingError) as info:
        resolve_params("gradient_boosting", Task.CLASSIFICATION, {"learning_rate": 5, "depth": 3})
    assert set(info.value.details["params"]) == {"learning_rate", "depth"}
    with pytest.raises(TrainingError):
        resolve_params("linear_regression", Task.CLASSIFICATION, {})


def test_api_keys_are_long_prefixed_and_stored_as_sha256() -> None:
    key = generate_api_key()
    assert key.key.startswith("mg_") and len(key.key) >= 64
    assert key.key_hash == hashlib.sha256(key.key.encode()).hexdigest() == hash_api_key(key.key)
    assert key.prefix == key.key[:10] and generate_api_key().key != key.key


def api_public(**stats: object) -> ApiPublic:
    now = datetime.now(UTC)
    return ApiPublic(
        id="a1",
        name="n",
        model_id="m",
        model_name="m",
        version_number=1,
        model_version_id="v",
        task=Task.CLASSIFICATION,
        status=ApiStatus.ACTIVE,
        endpoint_url="http://i/api/predict/a1",
        key_prefix="mg_x",
        created_at=now,
        updated_at=now,
        rate_limit_per_minute=1,
        log_payloads=True,
        alert_thresholds=AlertThresholds(),
        stats=ApiSummary(**stats) if stats else None,
    )


def test_docs_examples_are_built_from_the_real_schema_and_quote_safely() -> None:
    version = ModelVersion(
        id="v1",
        number=3,
        features=[
            {"name": "city", "type": "category", "categories": ["O'Hare", "Paris"]},
            {"name": "age", "type": "integer"},
        ],
        classes=["no", "yes"],
        example={"input": {"city": "O'Hare", "age": 41}, "output": {"prediction": "yes"}},
    )
    docs = build_docs(api_public(), version)
    assert docs.example_request == {"city": "O'Hare", "age": 41}
    assert (
        docs.example_response["prediction"] == "yes"
        and docs.example_response["model_version"] == "v1"
    )
    argv = shlex.split(docs.curl.replace("\\\n", " "))
    assert argv[argv.index("-d") + 1] == json.dumps(docs.example_request, separators=(", ", ": "))
    assert "X-API-Key: YOUR_API_KEY" in argv and "http://i/api/predict/a1" in argv
    assert 'API_KEY = "YOUR_API_KEY"' in docs.python
    compile(docs.python, "example.py", "exec")
    assert "one of: O'Hare, Paris" in (docs.features[0].description or "")


def test_alerts_cross_thresholds_with_severity() -> None:
    stats = ApiStats(
        range="24h",
        requests_in_range=100,
        error_rate=0.2,
        p95_ms=120,
        cpu_percent=10,
        memory_mb=2000,
    )
    alerts = {
        a.metric: a.severity
        for a in compute_alerts(stats, AlertThresholds(error_rate=0.1, p95_ms=100))
    }
    assert alerts == {"error_rate": "critical", "p95_ms": "warning", "memory_mb": "critical"}
    few = ApiStats(range="24h", requests_in_range=3, error_rate=1.0, p95_ms=900)
    assert compute_alerts(few, AlertThresholds()) == []


def test_sorting_by_usage_puts_unused_apis_last_when_descending() -> None:
    used = api_public(total_requests=5, error_rate=0.5).model_copy(update={"id": "b", "name": "b"})
    unused = api_public().model_copy(update={"id": "c", "name": "c"})
    assert [a.id for a in sort_apis([unused, used], "requests", True)] == ["b", "c"]
    assert [a.id for a in sort_apis([used, unused], "error_rate", False)] == ["c", "b"]
    assert [a.id for a in sort_apis([used, unused], "name", False)] == ["b", "c"]


def test_jwt_secret_is_generated_once_and_kept_private(tmp_path, monkeypatch) -> None:
    from management_api.security import load_or_create_secret
    from management_api.settings import ManagementSettings

    first = load_or_create_secret(None, tmp_path / "data")
    assert first == load_or_create_secret(None, tmp_path / "data") and len(first) >= 48
    assert (tmp_path / "data" / "jwt-secret").stat().st_mode & 0o777 == 0o600
    assert load_or_create_secret("configured", tmp_path / "data") == "configured"
    monkeypatch.setenv("MODELGATE_STACK_DATA_DIR", str(tmp_path / "stack"))
    settings = ManagementSettings()
    assert settings.management_data_dir == tmp_path / "stack"
    assert settings.management_admin_password is None and settings.management_jwt_secret is None
