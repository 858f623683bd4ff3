"""Feedback without services: body checks, the truth's text, the budget, the consumer's columns,
the F1 of the performance route and the shape of its SQL."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest
from sklearn.metrics import f1_score as sklearn_f1

from ingress.errors import IngressError
from ingress.feedback import MAX_ITEMS, FeedbackBudget, actual_text, parse_items
from management_api.alert_engine import Figures, condition
from management_api.performance import (
    confusion_sql,
    errors_sql,
    f1_score,
    series_sql,
    unmatched_sql,
    window_feedback_sql,
)
from metrics_consumer.decoding import FEEDBACK_COLUMNS, decode, decode_feedback
from schemas.alerts import AlertRuleKind
from schemas.messages import FEEDBACK_COLUMN_OF, Feedback, FeedbackBatch, encode

RID = "0123456789abcdef0123456789abcdef"


def test_actual_is_written_as_predictions_are_stored() -> None:
    assert actual_text("setosa", True) == "setosa"
    assert actual_text(7, True) == "7" == str(7)
    assert actual_text(7.0, True) == "7"  # a label 7 sent as 7.0 still matches
    assert actual_text(True, True) == "True" == str(True)
    assert actual_text(2.5, False) == "2.5" == str(2.5)
    assert actual_text(3, False) == "3"
    for bad in ("", "x" * 201, None, [1], {"a": 1}):
        assert actual_text(bad, True) is None
    for bad in ("2.5", True, float("nan"), float("inf"), None):
        assert actual_text(bad, False) is None


def test_parse_items_takes_one_report_or_a_batch_and_names_what_is_wrong() -> None:
    one = orjson.dumps({"request_id": RID, "actual": "a"})
    assert parse_items(one, True) == [(RID, "a")]
    ids = [f"{n:032x}" for n in range(3)]
    batch = orjson.dumps({"items": [{"request_id": i, "actual": 1.5} for i in ids]})
    assert parse_items(batch, False) == [(i, "1.5") for i in ids]

    def error(body: object, classifier: bool = True) -> IngressError:
        raw = body if isinstance(body, bytes) else orjson.dumps(body)
        with pytest.raises(IngressError) as caught:
            parse_items(raw, classifier)
        assert caught.value.status == 400
        return caught.value

    assert error(b"{nope").code.value == "INVALID_JSON"
    assert "1000" in error({"items": [{"request_id": RID, "actual": 1}] * (MAX_ITEMS + 1)}).message
    assert error({"items": []}).details == {"items": "expected an array"}
    assert error([1, 2]).details == {"body": "expected an object"}
    assert error({"actual": "a"}).details["request_id"] == "field required"
    assert error({"request_id": RID}).details["actual"] == "field required"
    assert error({"request_id": RID.upper(), "actual": "a"}).details["item"] == "body"
    assert error({"request_id": 5, "actual": "a"}).details["request_id"].startswith("expected")
    assert error({"request_id": RID, "actual": "a", "x": 1}).details["unexpected"] == ["x"]
    assert error({"items": [{"request_id": RID, "actual": "a"}], "x": 1}).details == {
        "unexpected": ["x"]
    }
    late = error({"items": [{"request_id": RID, "actual": 1}, {"request_id": ids[1]}]})
    assert late.details == {"item": "items.1", "actual": "field required"}
    assert "regression" in error({"request_id": RID, "actual": "a"}, classifier=False).message


def test_a_request_reported_twice_in_one_batch_is_a_400_naming_both_items() -> None:
    """Both reports would share a received_at: which one is the truth would be the reader's
    pick (the retraining export's argMax by time alone). Across requests the later one wins."""
    other = "0" * 32
    items = [
        {"request_id": RID, "actual": "a"},
        {"request_id": other, "actual": "b"},
        {"request_id": RID, "actual": "b"},
    ]
    with pytest.raises(IngressError) as caught:
        parse_items(orjson.dumps({"items": items}), True)
    assert caught.value.status == 400 and "twice" in caught.value.message
    assert caught.value.details == {
        "item": "items.2",
        "request_id": "duplicate",
        "first": "items.0",
    }
    assert parse_items(orjson.dumps({"items": items[:2]}), True) == [(RID, "a"), (other, "b")]


def test_budget_counts_items_refills_per_minute_and_keeps_apis_apart() -> None:
    now = [0.0]
    budget = FeedbackBudget(120, clock=lambda: now[0])
    assert budget.take("a", 100) == 0.0
    assert budget.take("a", 30) == pytest.approx(5.0)  # 10 short at 2 items/s
    assert budget.take("b", 120) == 0.0
    now[0] = 5.0
    assert budget.take("a", 30) == 0.0
    assert budget.take("a", 121) == float("inf")


def test_consumer_columns_derive_from_the_message_and_decode_to_epoch_ms() -> None:
    assert FEEDBACK_COLUMNS == ("batch_id", *FEEDBACK_COLUMN_OF)
    at = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)
    batch = FeedbackBatch(
        batch_id="b1",
        items=[
            Feedback(feedback_id="f1", request_id=RID, api_id="a", actual="x", received_at=at),
            Feedback(feedback_id="f2", request_id=RID, api_id="a", actual="y", received_at=at),
        ],
    )
    rows = decode("feedback", encode(batch))
    assert rows == decode_feedback(encode(batch))
    by_name = dict(zip(FEEDBACK_COLUMNS, rows.columns, strict=True))  # type: ignore[union-attr]
    assert by_name["batch_id"] == ["b1", "b1"] and by_name["actual"] == ["x", "y"]
    assert by_name["received_at"] == [int(at.timestamp() * 1000)] * 2
    kept = rows.select([False, True])  # type: ignore[union-attr]
    assert kept.feedback_ids == ["f2"] and kept.batch_id == "b1"


def test_f1_matches_the_training_metric() -> None:
    truth = ["a", "b", "c", "a", "b", "c", "a"]
    predicted = ["a", "b", "a", "a", "c", "c", "b"]
    counts: dict[tuple[str, str], int] = {}
    for p, t in zip(predicted, truth, strict=True):
        counts[(p, t)] = counts.get((p, t), 0) + 1
    macro = sklearn_f1(truth, predicted, average="macro")
    assert f1_score(counts, ["a", "b", "c"]) == pytest.approx(macro, abs=1e-12)
    binary_truth, binary_pred = ["no", "yes", "yes", "no"], ["no", "yes", "no", "yes"]
    pairs: dict[tuple[str, str], int] = {}
    for p, t in zip(binary_pred, binary_truth, strict=True):
        pairs[(p, t)] = pairs.get((p, t), 0) + 1
    expected = sklearn_f1(binary_truth, binary_pred, average="binary", pos_label="yes")
    assert f1_score(pairs, ["no", "yes"]) == pytest.approx(expected)
    assert f1_score({}, None) is None


def test_accuracy_drop_condition_reads_accuracy_or_rmse_and_needs_enough_feedback() -> None:
    kind = AlertRuleKind.ACCURACY_DROP
    assert condition(kind, 0.8, 10, Figures(feedback=20, accuracy=0.6)) == (0.6, True)
    assert condition(kind, 0.8, 10, Figures(feedback=20, accuracy=0.9)) == (0.9, False)
    assert condition(kind, 0.8, 10, Figures(feedback=5, accuracy=0.1)) == (None, False)
    assert condition(kind, 2.0, 1, Figures(feedback=3, rmse=2.5)) == (2.5, True)
    assert condition(kind, 2.0, 1, Figures(feedback=3, rmse=1.5)) == (1.5, False)
    assert condition(kind, 0.8, 0, Figures()) == (None, False)


def test_performance_sql_joins_latest_feedback_with_served_requests_by_parameters() -> None:
    for sql in (confusion_sql("db"), errors_sql("db"), series_sql("db"), unmatched_sql("db")):
        assert "{api_id:String}" in sql and "{start:UInt32}" in sql
        assert "db.feedback" in sql and "db.request_events" in sql
        assert "authenticated AND NOT shadow AND status_code < 400" in sql
    assert "argMax(actual, (received_at, feedback_id))" in confusion_sql("db")
    window = window_feedback_sql("db")
    assert "ARRAY JOIN {windows:Array(UInt32)}" in window and "{api_ids:Array(String)}" in window
    with pytest.raises(ValueError):
        confusion_sql("db; DROP TABLE x")
