"""Decoding broker messages into ClickHouse columns (no services)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import orjson
import pytest

from metrics_consumer.decoding import (
    EVENT_COLUMNS,
    SAMPLE_COLUMNS,
    DecodeError,
    EventBatch,
    concat_rows,
    decode,
    event_columns,
    event_rows,
    sample_columns,
)
from schemas.messages import RequestEvent, RequestEventBatch, WorkerSample, encode
from schemas.messages import decode as decode_message

TS = datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)


def event(**overrides: object) -> RequestEvent:
    fields: dict[str, object] = {"event_id": "e1", "ts": TS, "api_id": "a", "status_code": 200}
    fields.update(overrides)
    return msgspec.convert(fields, RequestEvent)


def test_decodes_an_event_batch_by_routing_key_into_columns() -> None:
    body = encode(RequestEventBatch(batch_id="b", ingress_id="i", events=[event()]))
    decoded = decode("request.batch", body)
    assert isinstance(decoded, EventBatch) and decoded.batch_id == "b"
    assert decoded.rows.event_ids == ["e1"]


def test_event_decoder_gives_the_columns_of_the_schema_and_reads_laxly() -> None:
    events = [
        event(
            event_id=f"e{i}",
            total_ms=i * 1.5,
            rows=i,
            worker_id="w",
            input='{"x": 1}',
            ts=TS + timedelta(milliseconds=i),
        )
        for i in range(5)
    ]
    body = encode(RequestEventBatch(batch_id="b", ingress_id="i", events=events))
    decoded = decode("request.batch", body)
    assert isinstance(decoded, EventBatch)
    assert decoded.rows.columns == event_rows(events, "b").columns
    # Whole numbers for floats, whole floats for integers, Z and offsets; unknown fields ignored.
    lax = (
        b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e", "api_id": "a",'
        b' "status_code": 200.0, "total_ms": 3, "ts": "2026-01-02T04:04:05.678+01:00",'
        b' "from_a_newer_ingress": [1]}], "also_newer": {}}'
    )
    strict = event(event_id="e", status_code=200, total_ms=3.0, ts=TS)
    lax_rows = decode("request.batch", lax)
    assert isinstance(lax_rows, EventBatch)
    assert lax_rows.rows.columns == event_rows([strict], "b").columns


def test_event_columns_are_the_columns_of_the_request_event_fields() -> None:
    """The consumer's column list derives from RequestEvent: every field once, under its column
    name (``version_key`` is stored as ``model_version``), plus the batch id."""
    fields = msgspec.structs.fields(RequestEvent)
    assert set(EVENT_COLUMNS) == {f.encode_name for f in fields} | {"batch_id"}
    assert len(EVENT_COLUMNS) == len(fields) + 1
    assert "model_version" in EVENT_COLUMNS and "version_key" not in EVENT_COLUMNS


def test_decodes_a_worker_sample() -> None:
    body = encode(WorkerSample(worker_id="w", cpu_percent=1.5, rss_mb=10, ts=TS))
    decoded = decode("worker.sample", body)
    assert isinstance(decoded, WorkerSample) and decoded.worker_id == "w"


@pytest.mark.parametrize(
    ("key", "body", "reason"),
    [
        ("request.batch", b"not json", "invalid"),
        ("request.batch", b'{"batch_id": "b", "ingress_id": "i", "events": [{}]}', "event_id"),
        (
            "request.batch",
            b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e",'
            b' "ts": "2026-01-01T00:00:00Z", "status_code": 200}]}',
            "api_id: field required",
        ),
        (
            "request.batch",
            b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e",'
            b' "ts": "2026-01-01T00:00:00Z", "api_id": "a", "status_code": 200,'
            b' "total_ms": "slow"}]}',
            "total_ms",
        ),
        ("request.batch", b'{"batch_id": "b", "events": []}', "ingress_id"),
        (
            "request.batch",
            b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e",'
            b' "ts": "2026-01-01T00:00:00Z", "api_id": "a", "status_code": 99999}]}',
            "status_code",
        ),
        (
            "request.batch",
            b'{"batch_id": "b", "ingress_id": "i", "events": [{"event_id": "e",'
            b' "ts": "2026-01-01T00:00:00", "api_id": "a", "status_code": 200}]}',
            "time zone",
        ),
        ("other.thing", b"{}", "routing key"),
    ],
)
def test_refuses_what_cannot_be_stored_with_a_reason(key: str, body: bytes, reason: str) -> None:
    with pytest.raises(DecodeError, match=reason):
        decode(key, body)


def test_event_columns_follow_the_column_list_with_ts_in_epoch_milliseconds() -> None:
    columns = event_columns([event(), event(event_id="e2", total_ms=3.5)], ["b1", "b2"])
    assert len(columns) == len(EVENT_COLUMNS)
    named = dict(zip(EVENT_COLUMNS, columns, strict=True))
    assert named["event_id"] == ["e1", "e2"]
    assert named["batch_id"] == ["b1", "b2"]
    assert named["ts"] == [int(TS.timestamp() * 1000)] * 2
    assert named["total_ms"] == [0.0, 3.5]


def test_sample_columns_follow_the_column_list() -> None:
    sample = WorkerSample(
        worker_id="w",
        cpu_percent=2,
        rss_mb=3,
        ts=TS,
        loaded_models=["m"],
        model_memory_mb={"m": 1.0},
    )
    named = dict(zip(SAMPLE_COLUMNS, sample_columns([sample]), strict=True))
    assert named["loaded_models"] == [["m"]] and named["model_memory_mb"] == [{"m": 1.0}]


def test_rows_of_several_messages_concatenate_into_one_insert_block() -> None:
    first = event_rows([event(), event(event_id="e2")], "b1")
    second = event_rows([event(event_id="e3")], "b2").select([True])
    block = concat_rows([first.select([False, True]), second])
    named = dict(zip(EVENT_COLUMNS, block, strict=True))
    assert named["event_id"] == ["e2", "e3"] and named["batch_id"] == ["b1", "b2"]
    assert first.ts_min == first.ts_max == int(TS.timestamp() * 1000)


def test_events_without_authenticated_are_judged_by_their_error_code_on_both_paths() -> None:
    """An older ingress sends no ``authenticated``: keyless, wrong-key and unknown-API rejections
    are pre-authentication, anything else authenticated; an explicit value wins; a replayed
    batch is flagged for the duplicate check."""
    events = [
        {
            "event_id": "e1",
            "ts": TS.isoformat(),
            "api_id": "a",
            "status_code": 401,
            "error_code": "MISSING_API_KEY",
        },
        {
            "event_id": "e2",
            "ts": TS.isoformat(),
            "api_id": "a",
            "status_code": 403,
            "error_code": "INVALID_API_KEY",
        },
        {
            "event_id": "e3",
            "ts": TS.isoformat(),
            "api_id": "a",
            "status_code": 403,
            "error_code": "API_INACTIVE",
        },
        {"event_id": "e4", "ts": TS.isoformat(), "api_id": "a", "status_code": 200},
        {
            "event_id": "e5",
            "ts": TS.isoformat(),
            "api_id": "a",
            "status_code": 200,
            "authenticated": False,
        },
    ]
    body = orjson.dumps({"batch_id": "b", "ingress_id": "i", "events": events, "replayed": True})
    decoded = decode("request.batch", body)
    assert isinstance(decoded, EventBatch) and decoded.replayed
    named = dict(zip(EVENT_COLUMNS, decoded.rows.columns, strict=True))
    assert named["authenticated"] == [False, False, True, True, False]
    batch = decode_message(body, RequestEventBatch)
    assert [e.authenticated for e in batch.events] == named["authenticated"]
    assert batch.replayed
    with pytest.raises(DecodeError, match=r"events\.4\.authenticated"):
        decode("request.batch", body.replace(b'"authenticated":false', b'"authenticated":"no"'))
