"""``modelgate simulate``'s sampling (issue 15): rows drawn from a reference profile look like
the training data (numbers' mean and std, categories' shares), drifts shift by standard
deviations, feedback contradicts predictions at the asked rate."""

from __future__ import annotations

import asyncio
import statistics
from collections import Counter
from typing import Any

import numpy as np
import pandas as pd
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from management_api.reference import OTHER, feature_profile
from modelgate import simulate
from modelgate.simulate import (
    Drift,
    Sampler,
    SimulateError,
    Target,
    drift_shifts,
    parse_drift,
    parse_duration,
    run,
)
from schemas import FeatureType


def number_profile(values: np.ndarray, name: str, kind: str = "number") -> dict[str, Any]:
    """A feature as the drift helper's training child profiles it (quantile bins ``(lo, hi]``,
    open at both ends)."""

    return feature_profile(name, FeatureType(kind), pd.Series(values))


def profile() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "rows": 5000,
        "source": "training",
        "features": [
            number_profile(rng.normal(5.0, 2.0, 5000), "height"),
            number_profile(rng.exponential(3.0, 5000), "wait"),
            number_profile(rng.integers(18, 80, 5000).astype(float), "age", "integer"),
            {
                "name": "plan",
                "type": "category",
                "mean": None,
                "std": None,
                "missing_share": 0.0,
                "bins": None,
                "categories": [
                    {"value": "basic", "share": 0.6},
                    {"value": "plus", "share": 0.3},
                    {"value": "pro", "share": 0.1},
                ],
            },
            {
                "name": "support",
                "type": "boolean",
                "mean": None,
                "std": None,
                "missing_share": 0.0,
                "bins": None,
                "categories": [{"value": "true", "share": 0.25}, {"value": "false", "share": 0.75}],
            },
        ],
        "prediction": {
            "kind": "classes",
            "categories": [{"value": "no", "share": 0.7}, {"value": "yes", "share": 0.3}],
        },
    }


def test_rows_drawn_from_bins_keep_each_numbers_mean_and_std() -> None:
    reference = profile()
    sampler = Sampler(reference, seed=1)
    rows = [sampler.row() for _ in range(20000)]
    for feature in reference["features"][:3]:
        drawn = [row[feature["name"]] for row in rows]
        assert abs(statistics.fmean(drawn) - feature["mean"]) < 0.05 * feature["std"], feature
        assert abs(statistics.pstdev(drawn) / feature["std"] - 1) < 0.05, feature["name"]
    assert all(isinstance(row["age"], int) for row in rows)


def test_integers_with_a_point_mass_fill_each_bin_at_its_share() -> None:
    """Pixel-like integers (60% zeros): a draw lands in the bin it was drawn for, as the drift
    query bins it (``(lo, hi]``), so the simulated traffic's PSI stays near 0."""

    rng = np.random.default_rng(7)
    values = np.where(rng.random(5000) < 0.6, 0, rng.integers(1, 17, 5000))
    feature = feature_profile("pixel", FeatureType.INTEGER, pd.Series(values))
    sampler = Sampler({"features": [feature]}, seed=8)
    drawn = np.array([sampler.row()["pixel"] for _ in range(20000)])
    edges = [b["hi"] for b in feature["bins"][:-1]]
    shares = np.bincount(np.searchsorted(edges, drawn, side="left"), minlength=len(edges) + 1)
    expected = [b["share"] for b in feature["bins"]]
    assert shares / len(drawn) == pytest.approx(expected, abs=0.015)


def test_categories_and_booleans_come_at_their_shares() -> None:
    sampler = Sampler(profile(), seed=2)
    rows = [sampler.row() for _ in range(20000)]
    plans = Counter(row["plan"] for row in rows)
    assert {k: round(v / 20000, 2) for k, v in plans.items()} == pytest.approx(
        {"basic": 0.6, "plus": 0.3, "pro": 0.1}, abs=0.02
    )
    support = [row["support"] for row in rows]
    assert set(support) == {True, False}
    assert sum(support) / len(support) == pytest.approx(0.25, abs=0.02)


def test_a_feature_missing_in_training_is_left_out_at_its_share() -> None:
    reference = profile()
    reference["features"][1]["missing_share"] = 0.1
    sampler = Sampler(reference, seed=6)
    rows = [sampler.row() for _ in range(10000)]
    assert sum("wait" not in row for row in rows) / len(rows) == pytest.approx(0.1, abs=0.015)
    assert all("height" in row for row in rows)


def test_a_drift_shifts_only_its_feature_by_k_standard_deviations() -> None:
    reference = profile()
    sampler = Sampler(reference, seed=3)
    rows = [sampler.row({"height": 2.0}) for _ in range(10000)]
    height, wait = reference["features"][0], reference["features"][1]
    shifted = statistics.fmean(row["height"] for row in rows)
    assert shifted == pytest.approx(height["mean"] + 2 * height["std"], abs=0.1 * height["std"])
    assert statistics.fmean(row["wait"] for row in rows) == pytest.approx(
        wait["mean"], abs=0.1 * wait["std"]
    )


def test_a_ramp_grows_the_shift_linearly_then_holds_it() -> None:
    drifts = [Drift("height", 2.0)]
    assert drift_shifts(drifts, 0.0, 60.0) == {"height": 0.0}
    assert drift_shifts(drifts, 30.0, 60.0) == {"height": 1.0}
    assert drift_shifts(drifts, 600.0, 60.0) == {"height": 2.0}
    assert drift_shifts(drifts, 0.0, 0.0) == {"height": 2.0}


def test_drifts_of_unknown_features_or_categories_are_refused_with_the_reason() -> None:
    sampler = Sampler(profile(), seed=4)
    with pytest.raises(SimulateError, match="not a feature"):
        sampler.check_drifts([Drift("nope", 1.0)])
    with pytest.raises(SimulateError, match="category"):
        sampler.check_drifts([Drift("plan", 1.0)])


def test_feedback_contradicts_the_prediction_at_the_error_rate() -> None:
    sampler = Sampler(profile(), seed=5)
    assert all(sampler.truth("yes", 0.0) == "yes" for _ in range(1000))
    truths = [sampler.truth("yes", 0.2) for _ in range(10000)]
    assert set(truths) == {"yes", "no"}
    assert truths.count("no") / len(truths) == pytest.approx(0.2, abs=0.02)
    values = [sampler.truth(10.0, 1.0) for _ in range(100)]
    assert all(v != 10.0 for v in values)


def test_durations_and_drifts_parse_as_the_command_line_writes_them() -> None:
    assert parse_duration("5m") == 300
    assert parse_duration("30") == 30
    assert parse_duration("500ms") == 0.5
    assert parse_drift("petal_length_cm=+2sd") == Drift("petal_length_cm", 2.0)
    assert parse_drift("x = -1.5sd") == Drift("x", -1.5)
    with pytest.raises(ValueError):
        parse_duration("soon")
    with pytest.raises(ValueError):
        parse_drift("x+2sd")


def test_the_admin_password_file_is_the_management_apis() -> None:
    from management_api.app import ADMIN_PASSWORD_FILE

    assert simulate.ADMIN_PASSWORD_FILE == ADMIN_PASSWORD_FILE


async def fake_ingress(feedback: list[dict[str, Any]]) -> TestServer:
    """An ingress that answers every row "yes" and accepts feedback (no broker behind it)."""
    count = 0

    async def predict(request: web.Request) -> web.Response:
        nonlocal count
        await request.json()
        count += 1
        return web.json_response({"prediction": "yes", "request_id": f"r{count}"})

    async def take_feedback(request: web.Request) -> web.Response:
        items = (await request.json())["items"]
        feedback.extend(items)
        return web.json_response({"accepted": len(items)}, status=202)

    app = web.Application()
    app.router.add_post("/p", predict)
    app.router.add_post("/f", take_feedback)
    server = TestServer(app)
    await server.start_server()
    return server


async def test_a_run_sends_its_count_and_feedback_for_every_answer_even_when_stopped() -> None:
    feedback: list[dict[str, Any]] = []
    server = await fake_ingress(feedback)
    try:
        target = Target(str(server.make_url("/p")), str(server.make_url("/f")), "k")
        done = await run(
            target, profile(), rate=200, duration_s=10, max_requests=40, feedback_delay_s=0.2
        )
        assert (done.sent, dict(done.statuses), done.interrupted) == (40, {200: 40}, False)
        assert done.feedback_sent == done.feedback_accepted == len(feedback) == 40
        assert {item["actual"] for item in feedback} == {"yes"}

        feedback.clear()
        stop = asyncio.Event()
        asyncio.get_running_loop().call_later(0.5, stop.set)
        stopped = await run(
            target, profile(), rate=50, duration_s=60, feedback_delay_s=30, stop=stop
        )
        assert stopped.interrupted and 10 <= stopped.sent <= 40, stopped.render()
        # Feedback not yet due is sent when the run stops, and counted once.
        assert stopped.feedback_sent == stopped.feedback_accepted == len(feedback)
        assert len(feedback) == stopped.statuses[200] > 0
    finally:
        await server.close()


def test_the_other_label_of_rare_categories_is_never_sent() -> None:

    assert simulate.OTHER == OTHER
    feature = {
        "name": "city",
        "type": "category",
        "categories": [{"value": "paris", "share": 0.7}, {"value": OTHER, "share": 0.3}],
    }
    sampler = Sampler({"features": [feature]}, seed=9)
    assert {sampler.row()["city"] for _ in range(200)} == {"paris"}
