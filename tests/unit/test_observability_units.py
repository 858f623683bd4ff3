"""W3C ``traceparent`` parsing, the trace a batch carries to the predictor, and the cap on
``api_id`` label values (issue 14). No services."""

from __future__ import annotations

import asyncio
import shutil
import subprocess

import orjson
import pytest
from prometheus_client import generate_latest

from infra.prometheus import OTHER, LabelCap
from ingress.batcher import MicroBatcher
from ingress.metrics import IngressMetrics
from schemas.messages import BatchTrace, PredictBatch, decode
from schemas.trace import RequestTrace, parse_traceparent
from tests.unit.test_ingress_logic import FakeTransport

TRACE, SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


@pytest.mark.parametrize(
    "value",
    [
        f"00-{TRACE}-{SPAN}-01",
        f"  00-{TRACE}-{SPAN}-00\t",  # optional whitespace around the value
        f"01-{TRACE}-{SPAN}-01",  # a later version, read by its first fields
        f"cc-{TRACE}-{SPAN}-01-what-the-future-adds",
    ],
)
def test_a_valid_traceparent_keeps_its_trace_and_parent(value: str) -> None:
    parsed = parse_traceparent(value)
    assert parsed is not None and (parsed.trace_id, parsed.parent_id) == (TRACE, SPAN)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex is invalid
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # version ff is forbidden
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE}-{SPAN}-0g",
        f"00_{TRACE}_{SPAN}_01",
        f"00-{TRACE[:-1]}-{SPAN}0-01",
        f"01-{TRACE}-{SPAN}-01x",  # a later version's extra part must follow a dash
        "00-" + "a" * 600,
    ],
)
def test_a_malformed_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None
    trace = RequestTrace.from_header(value)  # a new trace, never an error
    assert len(trace.trace_id) == 32 and trace.trace_id != TRACE and trace.caller_span_id == ""
    assert parse_traceparent(trace.traceparent()) is not None


def test_ingress_hands_on_the_trace_with_its_own_span_as_parent() -> None:
    trace = RequestTrace.from_header(f"00-{TRACE}-{SPAN}-03")
    assert (trace.trace_id, trace.caller_span_id, trace.flags) == (TRACE, SPAN, 1)
    assert trace.traceparent() == f"00-{TRACE}-{trace.span_id}-01" and trace.span_id != SPAN


async def test_a_batch_carries_each_requests_trace_and_the_first_in_its_amqp_header() -> None:
    transport = FakeTransport()
    batcher = MicroBatcher(max_rows=64, max_wait_s=0.005, timeout_s=1.0)
    batcher.attach(transport.send, transport.expect, transport.forget)
    traces = [RequestTrace.from_header(None) for _ in range(3)]
    for n, trace in enumerate(traces):
        rows = [[n]] * (n + 1)
        batcher.submit("v1", ["x"], False, rows, BatchTrace(f"r{n}", trace.traceparent(), n + 1))
    await asyncio.sleep(0.02)
    assert len(transport.sent) == 1
    batch = decode(orjson.dumps(transport.sent[0]), PredictBatch)
    assert [(t.request_id, t.traceparent, t.rows) for t in batch.traces] == [
        (f"r{n}", trace.traceparent(), n + 1) for n, trace in enumerate(traces)
    ]
    assert len(batch.rows) == 6
    assert transport.headers == [{"traceparent": traces[0].traceparent()}]


def test_the_label_cap_folds_values_past_it_and_reuses_the_place_of_a_gone_one() -> None:
    alive = {"a", "b", "c", "d"}
    released: list[str] = []
    now = [0.0]
    cap = LabelCap(2, alive.__contains__, released.append, recheck_s=10.0, clock=lambda: now[0])
    assert [cap("a"), cap("b"), cap("c"), cap("a")] == ["a", "b", OTHER, "a"]
    alive.discard("a")  # deleted
    assert cap("d") == OTHER  # gone values are looked for at most every recheck_s
    now[0] = 11.0
    assert cap("d") == "d" and released == ["a"]
    alive.discard("b")
    assert cap("c") == OTHER
    now[0] = 22.0
    assert cap("c") == "c" and released == ["a", "b"]
    assert cap.kept == frozenset({"c", "d"})


def test_ingress_metrics_keep_at_most_the_cap_of_api_ids_and_pass_promtool() -> None:
    """Before the cap, every API id got series of its own for the life of the process."""
    registered = {f"api-{n}" for n in range(12)}
    metrics = IngressMetrics(5, registered.__contains__, api_recheck_s=0)
    for n in range(12):
        metrics.request_done(f"api-{n}", 200, 0.01, "1")
        metrics.request_shed(f"api-{n}", "queue_delay")
    text = generate_latest(metrics.registry).decode()
    ids = {
        line.split('api_id="')[1].split('"')[0] for line in text.splitlines() if "api_id=" in line
    }
    assert ids == {"api-0", "api-1", "api-2", "api-3", "api-4", OTHER}
    assert 'ingress_requests_total{api_id="other",status="200",version="1"} 7.0' in text
    # api-0 is deleted: its series go, and the next new API takes its place.
    registered.discard("api-0")
    metrics.request_done("api-new", 200, 0.01, "1")
    text = generate_latest(metrics.registry).decode()
    assert 'api_id="api-0"' not in text and 'api_id="api-new"' in text
    promtool = shutil.which("promtool")
    assert promtool is not None, "promtool: apt-get install --no-install-recommends prometheus"
    done = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True)
    assert done.returncode == 0 and not (done.stdout + done.stderr).strip(), done
