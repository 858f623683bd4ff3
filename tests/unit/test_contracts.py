"""The wire contracts: one definition per message is what every service writes and reads."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import orjson
import pytest

from ingress.events import batch_body, encode_event
from schemas.messages import (
    EVENT_COLUMN_OF,
    SCHEMA_VERSION,
    ApiRecord,
    MessageError,
    PredictBatch,
    PredictResult,
    RequestEvent,
    RequestEventBatch,
    RowResult,
    Task,
    WorkerSample,
    decode,
    encode,
)

TS = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def test_every_message_round_trips_through_encode_and_decode_with_its_schema_version() -> None:
    messages = [
        PredictBatch(
            batch_id="b",
            version_key="k",
            task=Task.CLASSIFICATION,
            feature_names=["x", "c"],
            rows=[[1.5, "a"], [None, "b"]],
            sent_at=1.0,
            deadline=2.0,
        ),
        PredictResult(
            batch_id="b",
            version_key="k",
            worker_id="w",
            results=[RowResult(prediction="y", probabilities={"y": 0.75, "n": 0.25})],
            cpu_ms=1.5,
        ),
        RequestEventBatch(
            batch_id="b",
            ingress_id="i",
            events=[RequestEvent(event_id="e", ts=TS, api_id="a", status_code=200)],
        ),
        WorkerSample(worker_id="w", cpu_percent=1.0, rss_mb=2.0, ts=TS),
    ]
    for message in messages:
        body = encode(message)
        assert orjson.loads(body)["schema_version"] == SCHEMA_VERSION
        assert decode(body, type(message)) == message


def test_a_newer_writers_unknown_fields_are_ignored_and_missing_ones_take_defaults() -> None:
    body = orjson.dumps(
        {
            "schema_version": 9,
            "batch_id": "b",
            "results": [{"prediction": 1, "confidence": 0.9}],
            "gpu_ms": 3.0,
        }
    )
    reply = decode(body, PredictResult)
    assert reply.schema_version == 9 and reply.results == [RowResult(prediction=1)]
    assert reply.worker_id == "" and reply.error_code is None


def test_a_row_result_carries_only_what_it_has_on_the_wire() -> None:
    """A failed row has no prediction key and a served one no error keys (compact replies)."""
    assert orjson.loads(encode(RowResult(prediction=3))) == {"prediction": 3}
    failed = RowResult(error_code="PREDICTION_FAILED", error_message="bad")
    assert orjson.loads(encode(failed)) == {
        "error_code": "PREDICTION_FAILED",
        "error_message": "bad",
    }


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"batch_id": "b", "task": "regression"}', "version_key: field required"),
        (b'{"batch_id": "b", "version_key": "k", "task": "poetry"}', "task"),
        (b"not json", "not JSON"),
    ],
)
def test_decode_refuses_a_bad_body_naming_the_field(body: bytes, reason: str) -> None:
    with pytest.raises(MessageError, match=reason):
        decode(body, PredictBatch)


def test_the_event_batch_ingress_splices_is_the_encoded_request_event_batch() -> None:
    """ingress encodes each event once and splices them into the batch: the bytes equal the
    struct's own encoding, replayed flag included."""
    events = [
        RequestEvent(event_id=f"e{n}", ts=TS, api_id="a", status_code=200, version_key="k")
        for n in range(3)
    ]
    for replayed in (False, True):
        spliced = batch_body("b", "i", [encode_event(e) for e in events], replayed)
        whole = RequestEventBatch(batch_id="b", ingress_id="i", events=events, replayed=replayed)
        assert spliced == encode(whole)
        assert decode(spliced, RequestEventBatch) == whole


def test_the_store_key_of_an_event_keeps_its_column_name_on_the_wire() -> None:
    """``version_key`` in code, ``model_version`` on the wire and in ClickHouse (immutable)."""
    event = RequestEvent(event_id="e", ts=TS, api_id="a", status_code=200, version_key="k-1")
    wire = orjson.loads(encode(event))
    assert wire["model_version"] == "k-1" and "version_key" not in wire
    assert EVENT_COLUMN_OF["version_key"] == "model_version"
    assert set(wire) == set(EVENT_COLUMN_OF.values())


def test_authenticated_absent_is_judged_by_error_code_and_never_left_unset() -> None:
    keyless = RequestEvent(
        event_id="e", ts=TS, api_id="a", status_code=401, error_code="MISSING_API_KEY"
    )
    served = msgspec.json.decode(
        b'{"event_id": "e", "ts": "2026-01-01T00:00:00Z", "api_id": "a", "status_code": 200}',
        type=RequestEvent,
    )
    assert keyless.authenticated is False and served.authenticated is True


def test_event_times_without_a_zone_are_refused() -> None:
    body = b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e",'
    body += b' "ts": "2026-01-01T00:00:00", "api_id": "a", "status_code": 200}]}'
    with pytest.raises(MessageError, match=r"events\.0\.ts: must be a time with its time zone"):
        decode(body, RequestEventBatch)


def test_an_api_record_names_the_store_key_and_the_number_apart_and_reads_older_names() -> None:
    """``version_key`` (store key) and ``version_number`` on the wire; a registry message of an
    older management API (``model_version`` / ``model_version_number``) still reads."""
    fields = {
        "api_id": "a",
        "name": "a",
        "key_hash": "00",
        "key_prefix": "mg",
        "task": "regression",
        "features": [],
        "updated_at": TS.isoformat(),
    }
    record = ApiRecord.model_validate({**fields, "version_key": "k-2", "version_number": 2})
    wire = orjson.loads(encode(record))
    assert wire["version_key"] == "k-2" and wire["version_number"] == 2
    assert "model_version" not in wire and "model_version_number" not in wire
    older = {**fields, "model_version": "k-2", "model_version_number": 2}
    assert decode(orjson.dumps(older), ApiRecord) == record


def test_a_predict_batch_encodes_to_exactly_what_msgspec_writes_for_it() -> None:
    """``encode`` writes a batch's rows with orjson (faster on floats): the bytes must not
    differ from the struct's own encoding."""
    batch = PredictBatch(
        batch_id="b",
        version_key="k",
        task=Task.REGRESSION,
        feature_names=["x", "c", "n"],
        rows=[[0.1 + 0.2, "é\n", None], [1e-7, "", True], [-3, "a", 12345678901234]],
        sent_at=1_796_000_000.123456,
        deadline=1_796_000_005.5,
    )
    assert encode(batch) == msgspec.json.encode(batch)
