"""The alert engine's CPU and memory rules read the figures the dashboard shows: an API's memory
is the memory of the versions it serves (the predictors' per-model samples, not the worker's
RSS) and its CPU is its share of the predictors' capacity over the rule's window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from management_api.alert_engine import read_figures, window_end
from management_api.queries import MonitoringQueries, cpu_share
from tests.integration.metrics_support import store_events
from tests.integration.test_resource_truth import RSS_MB, client, events, insert_samples, sample

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

__all__ = ["client"]


async def test_cpu_and_memory_rules_see_the_served_models_and_the_share_of_the_predictors(
    client: Any, ch_database: str
) -> None:
    now = datetime.now(UTC)
    await insert_samples(
        client,
        ch_database,
        [
            sample("w1", now - timedelta(seconds=20), {"va": 12.0, "vb": 30.0, "vb2": 8.0}),
            sample("w2", now - timedelta(seconds=10), {"va": 14.0}),
        ],
    )
    minute = (now - timedelta(minutes=2)).replace(second=5, microsecond=0)
    await store_events(
        client,
        ch_database,
        events("a", "va", 60, minute, cpu_ms=100.0) + events("b", "vb", 30, minute, cpu_ms=50.0),
    )
    queries = MonitoringQueries(client, ch_database)
    figures = await read_figures(
        queries, ["a", "b"], [300], now, versions={"a": ["va"], "b": ["vb", "vb2"]}
    )
    a, b = figures[("a", 300)], figures[("b", 300)]
    # Memory: the served versions in each worker's latest sample, the most of any worker.
    assert (a.memory_mb, b.memory_mb) == (14.0, 38.0)
    assert RSS_MB not in (a.memory_mb, b.memory_mb)
    # CPU: the window's cpu_ms over its wall time x the 2 workers that sampled in it.
    span_s = 300 + 60
    assert a.cpu_percent == pytest.approx(cpu_share(60 * 100.0, span_s, 2))
    assert b.cpu_percent == pytest.approx(cpu_share(30 * 50.0, span_s, 2))
    assert window_end(now) > now.timestamp()
