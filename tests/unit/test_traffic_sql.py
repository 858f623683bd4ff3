"""Canary and shadow, without services: the per-version and shadow SQL builders, the traffic
request's validation, the split an API record carries, and the version order of the figures."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from management_api import monitoring_sql as ms
from management_api.db import ExportedApi, ModelVersion
from management_api.exports import clear_traffic, traffic_of
from management_api.queries import version_order
from schemas import TrafficMode
from schemas.monitoring import VersionFigures
from schemas.resources import StatsQuery, TimeSeriesByQuery, TrafficSet


def placeholders(sql: str) -> set[str]:
    return set(re.findall(r"\{(\w+):[\w()]+\}", sql))


def test_version_range_stats_group_the_range_rollups_by_version() -> None:
    sql = ms.version_range_stats_sql("modelgate", "24h")
    assert "GROUP BY model_version" in sql
    assert "modelgate.request_stats_1h" in sql and "modelgate.request_stats_1m" in sql
    assert "quantilesTDigestMerge(0.5, 0.9, 0.95, 0.99)" in sql
    assert placeholders(sql) == {"api_id", "since", "split"}  # as range_params gives them
    assert set(ms.range_params(datetime.now(UTC), "24h")) == {"since", "split"}
    month = ms.version_range_stats_sql("modelgate", "30d")
    assert "request_stats_1d" in month and "request_stats_1h" in month


def test_version_time_series_groups_buckets_per_version_without_fill() -> None:
    sql = ms.version_time_series_sql("db", "minute")
    assert "db.request_stats_1m" in sql and "GROUP BY t, model_version" in sql
    assert "WITH FILL" not in sql  # filled per version by the caller
    assert placeholders(sql) == {"api_id", "step", "start", "end"}
    assert "db.request_stats_1h" in ms.version_time_series_sql("db", "day")


def test_shadow_figures_read_raw_shadow_events_only() -> None:
    sql = ms.shadow_stats_sql("db")
    assert "FROM db.request_events" in sql and "AND shadow" in sql
    assert "GROUP BY model_version" in sql
    # Latency leaves 4xx out, as the rollups do; errors count every status >= 400.
    assert "NOT (status_code >= 400 AND status_code < 500)" in sql
    assert "countIf(status_code >= 400)" in sql
    assert placeholders(sql) == {"api_id", "since_ms"}


def test_agreement_compares_each_successful_shadow_with_its_primary() -> None:
    sql = ms.shadow_agreement_sql("db")
    assert "ON s.shadow_of = p.event_id" in sql
    assert "countIf(s.prediction = p.prediction) AS agreed" in sql
    shadow_side, primary_side = sql.split("INNER JOIN")
    assert "AND shadow AND status_code < 400" in shadow_side
    assert "AND NOT shadow AND status_code < 400" in primary_side
    assert "{primary_since_ms:Int64}" in primary_side and "{since_ms:Int64}" in shadow_side
    assert placeholders(sql) == {"api_id", "since_ms", "primary_since_ms"}


def test_builders_refuse_bad_names_and_ranges() -> None:
    for build in (ms.shadow_stats_sql, ms.shadow_agreement_sql):
        with pytest.raises(ms.QueryError):
            build("db; DROP TABLE x")
    with pytest.raises(ms.QueryError):
        ms.version_range_stats_sql("db", "1y")
    with pytest.raises(ms.QueryError):
        ms.version_time_series_sql("db", "week")
    with pytest.raises(ms.QueryError):
        ms.version_range_stats_sql("db`x", "24h")


def test_traffic_request_validation() -> None:
    shadow = TrafficSet.model_validate({"version": 2, "mode": "shadow"})
    assert shadow.weight_percent == 100.0 and shadow.mode is TrafficMode.SHADOW
    canary = TrafficSet.model_validate_json(
        '{"version": 2, "mode": "canary", "weight_percent": 10}'
    )
    assert canary.weight_percent == 10.0
    for bad in (
        {"version": 2, "mode": "canary"},
        {"version": 2, "mode": "canary", "weight_percent": 0},
        {"version": 2, "mode": "canary", "weight_percent": -1},
        {"version": 2, "mode": "canary", "weight_percent": 101},
        {"version": 0, "mode": "shadow"},
        {"version": 2, "mode": "mirror"},
        {"version": 2, "mode": "shadow", "force": True},
    ):
        with pytest.raises(ValidationError):
            TrafficSet.model_validate(bad)
    with pytest.raises(ValidationError):
        TrafficSet.model_validate_json('{"version": "2", "mode": "shadow"}')
    with pytest.raises(ValidationError):
        TrafficSet.model_validate_json('{"version": 2, "mode": "shadow", "weight_percent": NaN}')


def test_split_by_is_version_or_nothing() -> None:
    assert StatsQuery.model_validate({"by": "version"}).by == "version"
    assert TimeSeriesByQuery.model_validate({}).by is None
    for query in (StatsQuery, TimeSeriesByQuery):
        with pytest.raises(ValidationError):
            query.model_validate({"by": "model"})


def test_the_record_carries_the_split_only_when_complete() -> None:
    api = ExportedApi(traffic_mode="canary", traffic_weight=10.0)
    api.traffic_version = ModelVersion(id="key-2", number=2)
    split = traffic_of(api)
    assert split is not None
    assert (split.version_key, split.version_number, split.mode, split.weight_percent) == (
        "key-2",
        2,
        TrafficMode.CANARY,
        10.0,
    )
    clear_traffic(api)
    assert (api.traffic_version_id, api.traffic_mode, api.traffic_weight) == (None, None, None)
    assert traffic_of(ExportedApi(traffic_mode=None, traffic_weight=None)) is None


def test_versions_are_ordered_by_number_unknown_last() -> None:
    figures = [
        VersionFigures(version_number=None, model_version_id="gone"),
        VersionFigures(version_number=3, model_version_id="c"),
        VersionFigures(version_number=1, model_version_id="a"),
    ]
    assert [f.model_version_id for f in sorted(figures, key=version_order)] == ["a", "c", "gone"]


def test_history_and_slowest_leave_shadow_answers_out() -> None:
    for sql in (
        ms.request_history_sql("db", None),
        ms.request_history_sql("db", "error"),
        ms.request_count_sql("db", "5xx"),
        ms.slowest_requests_sql("db"),
    ):
        assert "AND NOT shadow" in sql, sql
