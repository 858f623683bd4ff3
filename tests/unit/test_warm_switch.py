"""Warm switch without sockets: ingress holds a deploy until the new version is reported ready
(snapshots neither undo nor hurry it; a bound ends the wait), and predictors warm what they are
told with a row ingress would accept."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from ingress.registry import Registry
from ingress.validation import FeatureValidator
from predictor.warmup import serving_targets, targets_of_change, warm_target
from schemas import (
    ApiChanged,
    ApiChangeKind,
    ApiRecord,
    ApiStatus,
    FeatureSpec,
    FeatureType,
    Task,
    TrafficMode,
    TrafficSplit,
    VersionReady,
)
from schemas.messages import decode, encode

T0 = datetime(2026, 1, 1, tzinfo=UTC)
OLD_FEATURES = [FeatureSpec(name="x", type=FeatureType.NUMBER)]
NEW_FEATURES = [
    FeatureSpec(name="x", type=FeatureType.NUMBER),
    FeatureSpec(name="n", type=FeatureType.INTEGER),
    FeatureSpec(name="flag", type=FeatureType.BOOLEAN, required=False),
    FeatureSpec(name="color", type=FeatureType.CATEGORY, categories=["red", "blue"]),
]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def record(version: str, at: datetime, key: str = "k", **kw: Any) -> ApiRecord:
    values: dict[str, Any] = {
        "api_id": "a",
        "name": "a",
        "key_hash": hashlib.sha256(key.encode()).hexdigest(),
        "key_prefix": key[:4],
        "version_key": version,
        "version_number": int(version[1:]),
        "task": Task.REGRESSION,
        "features": OLD_FEATURES if version == "v1" else NEW_FEATURES,
        "updated_at": at,
    }
    values.update(kw)
    return ApiRecord(**values)


def deployed(version: str, at: datetime, **kw: Any) -> ApiChanged:
    return ApiChanged(kind=ApiChangeKind.DEPLOYED, api_id="a", api=record(version, at, **kw), at=at)


def serving_v1(timeout_s: float = 30.0) -> tuple[Registry, Clock]:
    clock = Clock()
    registry = Registry(warm_switch_timeout_s=timeout_s, clock=clock)
    registry.apply_snapshot([record("v1", T0)], T0)
    return registry, clock


def version_of(registry: Registry) -> str:
    entry = registry.get("a")
    assert entry is not None
    return entry.version_key


def test_a_deploy_keeps_the_old_version_and_its_features_until_the_new_one_is_ready() -> None:
    registry, _ = serving_v1()
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    entry = registry.get("a")
    assert entry is not None and entry.version_key == "v1"
    assert entry.validator.feature_names == ["x"] and entry.record.version_number == 1
    assert registry.pending_switches == 1

    assert registry.version_ready("v1") == []  # another version's report changes nothing
    assert version_of(registry) == "v1"
    assert registry.version_ready("v2") == ["a"]
    entry = registry.get("a")
    assert entry is not None and entry.version_key == "v2"
    assert entry.validator.feature_names == ["x", "n", "flag", "color"]
    assert registry.pending_switches == 0 and registry.switches_on_ready == 1


def test_snapshots_neither_undo_nor_hurry_a_pending_switch() -> None:
    registry, _ = serving_v1()
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=2)))
    # Taken before the deploy (still v1): must not cancel the switch.
    registry.apply_snapshot([record("v1", T0)], T0 + timedelta(seconds=1))
    assert version_of(registry) == "v1" and registry.pending_switches == 1
    # Taken after the deploy (already v2): must not switch before the version is warm.
    registry.apply_snapshot([record("v2", T0 + timedelta(seconds=2))], T0 + timedelta(seconds=3))
    assert version_of(registry) == "v1" and registry.pending_switches == 1
    registry.version_ready("v2")
    assert version_of(registry) == "v2"
    # And once switched, an old snapshot does not bring v1 back.
    registry.apply_snapshot([record("v1", T0)], T0 + timedelta(seconds=1))
    assert version_of(registry) == "v2"


def test_a_snapshot_that_reveals_a_missed_deploy_waits_like_the_event_would() -> None:
    registry, _ = serving_v1()
    registry.apply_snapshot([record("v2", T0 + timedelta(seconds=1))], T0 + timedelta(seconds=2))
    assert version_of(registry) == "v1" and registry.pending_switches == 1
    registry.version_ready("v2")
    assert version_of(registry) == "v2"


def test_without_a_ready_report_the_switch_happens_once_the_bound_passes() -> None:
    registry, clock = serving_v1(timeout_s=30.0)
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    clock.now += 29.0
    # A later snapshot of the same deploy keeps the first deadline (it does not start again).
    registry.apply_snapshot([record("v2", T0 + timedelta(seconds=1))], T0 + timedelta(seconds=2))
    assert version_of(registry) == "v1"
    clock.now += 1.0
    assert version_of(registry) == "v2"
    assert registry.switches_timed_out == 1 and registry.pending_switches == 0


def test_other_changes_apply_at_once_while_the_version_waits() -> None:
    registry, _ = serving_v1()
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    rotated = record("v2", T0 + timedelta(seconds=2), key="new-key", status=ApiStatus.INACTIVE)
    registry.apply_change(
        ApiChanged(
            kind=ApiChangeKind.KEY_ROTATED, api_id="a", api=rotated, at=T0 + timedelta(seconds=2)
        )
    )
    entry = registry.get("a")
    assert entry is not None and entry.version_key == "v1"
    assert entry.key_matches("new-key") and not entry.key_matches("k") and not entry.active
    registry.version_ready("v2")
    entry = registry.get("a")
    assert entry is not None and entry.version_key == "v2" and entry.key_matches("new-key")


def test_a_rollback_before_the_switch_cancels_it_and_a_deletion_forgets_it() -> None:
    registry, _ = serving_v1()
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    registry.apply_change(deployed("v1", T0 + timedelta(seconds=2)))
    assert version_of(registry) == "v1" and registry.pending_switches == 0
    registry.version_ready("v2")
    assert version_of(registry) == "v1"

    registry.apply_change(deployed("v3", T0 + timedelta(seconds=3)))
    registry.apply_change(ApiChanged(kind=ApiChangeKind.DELETED, api_id="a", at=T0))
    assert registry.get("a") is None and registry.pending_switches == 0


def test_a_ready_report_that_overtook_the_deploy_switches_at_once() -> None:
    registry, clock = serving_v1()
    registry.version_ready("v2")
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    assert version_of(registry) == "v2" and registry.pending_switches == 0
    # A report older than the bound no longer counts as evidence the version is warm.
    registry.version_ready("v3")
    clock.now += 31.0
    registry.apply_change(deployed("v3", T0 + timedelta(seconds=2)))
    assert version_of(registry) == "v2" and registry.pending_switches == 1


def test_a_new_api_serves_at_once_and_a_zero_bound_switches_at_once() -> None:
    clock = Clock()
    registry = Registry(warm_switch_timeout_s=30.0, clock=clock)
    registry.apply_snapshot([], T0)
    registry.apply_change(
        ApiChanged(kind=ApiChangeKind.CREATED, api_id="a", api=record("v1", T0), at=T0)
    )
    assert version_of(registry) == "v1"

    registry, _ = serving_v1(timeout_s=0.0)
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    assert version_of(registry) == "v2"


def test_predictors_warm_with_a_row_ingress_accepts_in_its_feature_order() -> None:
    target = warm_target(record("v2", T0, task=Task.CLASSIFICATION))
    validator = FeatureValidator(NEW_FEATURES)
    row = validator.row(dict(zip(target.feature_names, target.row, strict=True)))
    assert list(target.row) == row == [0.0, 0, False, "red"]
    assert list(target.feature_names) == validator.feature_names and target.classifier


def test_predictors_warm_deploys_and_the_newest_served_versions_only() -> None:
    assert [t.version_key for t in targets_of_change(deployed("v2", T0))] == ["v2"]
    canary = TrafficSplit(
        version_key="v3", version_number=3, mode=TrafficMode.CANARY, weight_percent=10
    )
    with_canary = deployed("v2", T0, traffic=canary)
    assert [t.version_key for t in targets_of_change(with_canary)] == ["v2", "v3"]
    rotated = ApiChanged(kind=ApiChangeKind.KEY_ROTATED, api_id="a", api=record("v2", T0))
    off = ApiChanged(
        kind=ApiChangeKind.STATUS, api_id="a", api=record("v2", T0, status=ApiStatus.INACTIVE)
    )
    gone = ApiChanged(kind=ApiChangeKind.DELETED, api_id="a")
    assert [targets_of_change(c) for c in (rotated, off, gone)] == [[], [], []]

    shadow = TrafficSplit(
        version_key="v4", version_number=4, mode=TrafficMode.SHADOW, weight_percent=100
    )
    records = [
        record("v1", T0, api_id="old"),
        record("v2", T0 + timedelta(seconds=2), api_id="new"),
        record("v2", T0 + timedelta(seconds=1), api_id="same"),
        record("v3", T0 + timedelta(seconds=3), api_id="off", status=ApiStatus.INACTIVE),
        record("v1", T0 - timedelta(seconds=1), api_id="shadowed", traffic=shadow),
    ]
    assert [t.version_key for t in serving_targets(records, 10)] == ["v2", "v1", "v4"]
    assert [t.version_key for t in serving_targets(records, 1)] == ["v2"]


def test_version_ready_round_trips() -> None:
    ready = VersionReady(version_key="v2", predictor_id="p", ok=False, error="gone")
    assert decode(encode(ready), VersionReady) == ready


def test_a_request_for_a_version_being_preloaded_waits_for_that_load() -> None:
    """Two threads asking for one version while it loads: the store loads it once."""
    import threading
    from pathlib import Path

    from infra.model_store import LoadedModel, ModelStore
    from predictor.engine import ModelCache

    started, release = threading.Event(), threading.Event()
    calls: list[str] = []

    class SlowStore(ModelStore):
        def load(self, version_id: str) -> LoadedModel:
            calls.append(version_id)
            started.set()
            release.wait(5)
            return LoadedModel(version_id=version_id, estimator=object(), size_bytes=1)

    cache = ModelCache(SlowStore(Path("/nonexistent")), 4)
    got: list[LoadedModel] = []
    first = threading.Thread(target=lambda: got.append(cache.get("v")))
    first.start()
    assert started.wait(5)
    second = threading.Thread(target=lambda: got.append(cache.get("v")))
    second.start()
    second.join(0.2)
    assert second.is_alive()  # waiting for the first load, not loading again
    release.set()
    first.join(5)
    second.join(5)
    assert calls == ["v"] and cache.loads == 1 and got[0] is got[1]


def test_with_several_predictors_the_switch_waits_for_each_one_online() -> None:
    """No batch may land on a predictor still loading: every one online answers first; a failed
    answer counts as an answer, yet one of them must have loaded the version."""
    registry, _ = serving_v1()
    registry.predictors_online = 2
    registry.apply_change(deployed("v2", T0 + timedelta(seconds=1)))
    assert registry.version_ready("v2", "p1") == []
    assert version_of(registry) == "v1"
    assert registry.version_ready("v2", "p1") == []  # the same predictor twice is one answer
    assert registry.version_ready("v2", "p2") == ["a"]
    assert version_of(registry) == "v2"

    registry.apply_change(deployed("v3", T0 + timedelta(seconds=2)))
    registry.version_ready("v3", "p1", ok=False)
    registry.version_ready("v3", "p2", ok=False)
    assert version_of(registry) == "v2"
    registry.version_ready("v3", "p2", ok=True)
    assert version_of(registry) == "v3"
