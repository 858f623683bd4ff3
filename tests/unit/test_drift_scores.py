"""PSI and Jensen-Shannon distance (issue 15) against straightforward numpy/scipy computations,
the reference profile's bins, and the ``drift_psi`` alert condition."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import jensenshannon

from management_api.alert_engine import Figures, condition
from management_api.drift import (
    QUERY_SETTINGS,
    SAMPLE_REQUESTS,
    SAMPLE_ROWS,
    dimensions,
    drift_counts,
    sampling,
    time_slices,
)
from management_api.queries import MonitoringQueries
from management_api.reference import EPSILON, OTHER, build_profile, js_distance, psi
from schemas import FeatureSpec, FeatureType, Task


def numpy_psi(ref: np.ndarray, cur: np.ndarray) -> float:
    r = ref / ref.sum()
    c = cur / cur.sum()
    r = np.where(r == 0, EPSILON, r)
    c = np.where(c == 0, EPSILON, c)
    return float(np.sum((c - r) * np.log(c / r)))


@pytest.mark.parametrize("seed", range(5))
def test_psi_and_js_match_numpy_and_scipy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.integers(0, 50, 10).astype(float)
    cur = rng.integers(0, 50, 10).astype(float)
    ref[seed % 10] = 0.0  # an empty bin on one side
    assert psi(list(ref), list(cur)) == pytest.approx(numpy_psi(ref, cur), rel=1e-12)
    assert js_distance(list(ref), list(cur)) == pytest.approx(
        float(jensenshannon(ref / ref.sum(), cur / cur.sum(), base=2)), rel=1e-9
    )


def test_identical_distributions_score_zero_and_disjoint_ones_the_maximum() -> None:
    assert psi([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0)
    assert js_distance([1, 2, 3], [2, 4, 6]) == pytest.approx(0.0, abs=1e-7)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_profile_bins_are_quantiles_counted_as_clickhouse_counts_them() -> None:
    rng = np.random.default_rng(0)
    x = pd.DataFrame(
        {
            "n": rng.normal(10, 2, 1000),
            "c": rng.choice(["a", "b", "c"], 1000, p=[0.5, 0.3, 0.2]),
            "b": rng.choice([0.0, 1.0], 1000),
        }
    )
    x.loc[:99, "n"] = np.nan
    specs = [
        FeatureSpec(name="n", type=FeatureType.NUMBER),
        FeatureSpec(name="c", type=FeatureType.CATEGORY, categories=["a", "b", "c"]),
        FeatureSpec(name="b", type=FeatureType.BOOLEAN),
    ]
    profile = build_profile(x, specs, Task.REGRESSION, rng.normal(0, 1, 200))
    number, category, boolean = profile["features"]
    assert number["missing_share"] == pytest.approx(0.1)
    assert len(number["bins"]) == 10
    assert all(b["share"] == pytest.approx(0.1, abs=0.002) for b in number["bins"])
    edges = [b["hi"] for b in number["bins"][:-1]]
    finite = x["n"].dropna().to_numpy()
    counts = np.bincount([sum(v > e for e in edges) for v in finite], minlength=10)
    assert [b["share"] for b in number["bins"]] == pytest.approx(list(counts / len(finite)))
    assert {c["value"]: c["share"] for c in category["categories"]} == pytest.approx(
        x["c"].value_counts(normalize=True).to_dict(), abs=1e-6
    )
    assert {c["value"] for c in boolean["categories"]} == {"true", "false"}
    assert profile["prediction"]["kind"] == "values" and len(profile["prediction"]["bins"]) == 10


def test_many_categories_keep_the_most_frequent_and_sum_the_rest() -> None:
    x = pd.DataFrame({"c": [f"v{i % 100}" for i in range(1000)] + ["v1"] * 50})
    spec = FeatureSpec(name="c", type=FeatureType.CATEGORY)
    (feature,) = build_profile(x, [spec], Task.CLASSIFICATION, ["x", "y"])["features"]
    assert feature["categories"][0] == {"value": "v1", "share": pytest.approx(60 / 1050, abs=1e-6)}
    assert feature["categories"][-1]["value"] == OTHER
    assert len(feature["categories"]) == 31
    assert sum(c["share"] for c in feature["categories"]) == pytest.approx(1.0, abs=1e-4)


def test_drift_psi_condition_needs_a_reference_and_enough_rows() -> None:
    assert condition("drift_psi", 0.25, 100, Figures()) == (None, False)
    assert condition("drift_psi", 0.25, 100, Figures(drift_psi=0.9, drift_rows=99)) == (None, False)
    assert condition("drift_psi", 0.25, 100, Figures(drift_psi=0.3, drift_rows=100)) == (0.3, True)
    assert condition("drift_psi", 0.25, 0, Figures(drift_psi=0.2, drift_rows=5)) == (0.2, False)


def test_a_sample_of_the_sampled_size_scores_near_zero_in_distribution() -> None:
    """The statistical ground of sampling (``SAMPLE_REQUESTS``): PSI of in-distribution samples
    over 10 bins is about (bins - 1) / rows: ~0.0003 at 30k rows, ~0.007 for one of 24 hourly
    buckets' 1,250, against the 0.1 warning level; a 2-sd shift stays far above 0.25."""
    rng = np.random.default_rng(3)
    reference = [0.1] * 10
    edges = np.quantile(rng.normal(0, 1, 1_000_000), np.linspace(0.1, 0.9, 9))

    def counts(values: np.ndarray) -> list[float]:
        return list(np.bincount(np.searchsorted(edges, values), minlength=10).astype(float))

    whole = [psi(reference, counts(rng.normal(0, 1, SAMPLE_REQUESTS))) for _ in range(20)]
    bucket = [psi(reference, counts(rng.normal(0, 1, SAMPLE_REQUESTS // 24))) for _ in range(20)]
    assert max(whole) < 0.001 and float(np.mean(whole)) == pytest.approx(9 / 30_000, rel=0.5)
    assert max(bucket) < 0.03
    assert psi(reference, counts(rng.normal(2, 1, SAMPLE_REQUESTS))) > 1.0


def test_time_slices_cover_one_part_in_modulus_spread_over_every_bucket() -> None:
    window = (0, 24 * 3_600_000, 3_600_000)
    assert time_slices(window, 1) == [(0, 24 * 3_600_000)]
    slices = time_slices(window, 30)
    assert len(slices) == 24 and all(a < b for a, b in slices)
    assert {a // 3_600_000 for a, _ in slices} == set(range(24))  # one in each bucket
    assert sum(b - a for a, b in slices) == pytest.approx(24 * 3_600_000 / 30, rel=0.01)
    assert slices == time_slices(window, 30)  # deterministic
    one = time_slices((0, 600_000, 600_000), 10)  # the alert rule's one-bucket window
    assert len(one) == 24 and all(0 <= a < b <= 600_000 for a, b in one)


class RecordingClient:
    """A ClickHouse client that answers ``rows`` to every query and records its settings."""

    def __init__(self, rows: list[tuple[Any, ...]]) -> None:
        self.rows = rows
        self.settings: list[dict[str, Any] | None] = []

    async def query(
        self, sql: str, parameters: dict[str, Any], settings: dict[str, Any] | None = None
    ) -> Any:
        self.settings.append(settings)
        return type("Result", (), {"result_rows": self.rows})()


def test_a_window_of_batch_requests_is_sampled_by_its_rows() -> None:
    """30k requests of 100 instances each are 3M rows to parse: the sample bounds rows too."""
    client = RecordingClient([(SAMPLE_REQUESTS, SAMPLE_REQUESTS * 100)])
    queries = MonitoringQueries(client, "modelgate_x")  # type: ignore[arg-type]
    picked = asyncio.run(sampling(queries, "api", "api-v1", (0, 3_600_000, 300_000)))
    assert picked.modulus * SAMPLE_ROWS >= SAMPLE_REQUESTS * 100
    single = RecordingClient([(SAMPLE_REQUESTS, SAMPLE_REQUESTS)])
    queries = MonitoringQueries(single, "modelgate_x")  # type: ignore[arg-type]
    assert asyncio.run(sampling(queries, "api", "api-v1", (0, 3_600_000, 300_000))).modulus == 1


def test_every_drift_query_bounds_its_time_on_the_server() -> None:
    """The route stops waiting after its timeout, but ClickHouse would keep parsing: every drift
    query carries ``max_execution_time`` so a repeated heavy report cannot pile up."""
    reference = build_profile(
        pd.DataFrame({"a": np.arange(100.0), "c": ["x", "y"] * 50}),
        [
            FeatureSpec(name="a", type=FeatureType.NUMBER),
            FeatureSpec(name="c", type=FeatureType.CATEGORY),
        ],
        Task.CLASSIFICATION,
        ["p", "q"] * 50,
    )
    features, prediction = dimensions(reference)
    client = RecordingClient([(1, 1)])
    queries = MonitoringQueries(client, "modelgate_x")  # type: ignore[arg-type]
    window = (0, 3_600_000, 300_000)
    asyncio.run(sampling(queries, "api", "api-v1", window))
    client.rows = []
    asyncio.run(drift_counts(queries, "api", "api-v1", features, prediction, window, 3))
    assert len(client.settings) == 3
    assert all(s == QUERY_SETTINGS for s in client.settings)
    assert 0 < QUERY_SETTINGS["max_execution_time"] <= 60
