"""Prometheus metrics and trace ids (issue 14), on the real services: ingress, a predictor, the
metrics consumer (a subprocess), the management API, RabbitMQ and ClickHouse.

- Every service's ``/metrics``, read after some traffic, passes ``promtool check metrics``, with
  per-API labels, and the api_id cap folds APIs past it into ``api_id="other"``.
- A request's W3C ``traceparent`` trace id comes back in the answer's ``traceparent`` (with
  ingress's span as parent), reaches the predictor (its log line of the batch) and is stored in
  the request's ClickHouse row; a malformed header is replaced by a new trace, never refused.
"""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from infra.clickhouse import create_async_client
from infra.migrate import migrate_database
from schemas.trace import parse_traceparent
from tests.integration.metrics_support import ConsumerProcess, consumer_env, wait_for_count
from tests.management_support import MakeApi
from tests.prediction_fixtures import HOUSE_ROW, IRIS_FEATURES, IRIS_ROW, PredictionWorld

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]
OIP_TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def oip_row() -> list[float]:
    return [IRIS_ROW[name] for name in IRIS_FEATURES]


PROMTOOL_MISSING = (
    "promtool is not installed: it ships in Debian's prometheus package "
    "(apt-get install --no-install-recommends prometheus; infra/bootstrap.sh installs it)"
)


def promtool_check(service: str, text: str) -> None:
    """``promtool check metrics`` on an exposition: no error and no lint problem."""
    promtool = shutil.which("promtool")
    assert promtool is not None, PROMTOOL_MISSING
    done = subprocess.run(
        [promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=30
    )
    problems = (done.stdout + done.stderr).decode(errors="replace").strip()
    assert done.returncode == 0 and not problems, f"{service} /metrics: {problems}"


async def fetch(url: str, headers: dict[str, str] | None = None) -> str:
    async with aiohttp.ClientSession() as http, http.get(url, headers=headers) as response:
        assert response.status == 200, (url, response.status, await response.text())
        assert response.headers["Content-Type"].startswith("text/plain"), url
        return await response.text()


async def test_every_service_metrics_pass_promtool_with_capped_per_api_labels(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    make_api: MakeApi,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
) -> None:
    """After traffic to three APIs through an ingress capped at two api_id values, each
    service's exposition is clean for promtool; the third API counts as ``other``."""
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(
        tmp_path,
        consumer_env(namespace, clickhouse_server, ch_database, consumer_flush_interval_s=0.2),
    )
    consumer.start()
    try:
        worker = await start_worker()
        ingress = await start_ingress(ingress_metrics_max_apis=2)
        management = await make_api()
        async with aiohttp.ClientSession() as http:
            for api_id, row in (("iris", IRIS_ROW), ("house", HOUSE_ROW), ("limited", IRIS_ROW)):
                headers = {"X-API-Key": world.keys[api_id]}
                async with http.post(
                    f"{ingress.url}/api/predict/{api_id}", json=row, headers=headers
                ) as response:
                    assert response.status == 200, await response.text()
            async with http.post(f"{ingress.url}/api/predict/iris", json={}) as response:
                assert response.status == 401
            async with http.post(f"{ingress.url}/api/predict/no-such-api", json={}) as response:
                assert response.status == 401
        await wait_for_count(clickhouse_server, ch_database, 5, timeout=60, what="events")
        assert (await management.client.get("/health")).status == 200
        assert (await management.client.get("/api/users/me")).status == 401

        ingress_text = await fetch(f"{ingress.url}/metrics")
        expositions = {
            "ingress": ingress_text,
            "predictor": await fetch(f"http://127.0.0.1:{worker.metrics_port}/metrics"),
            "metrics-consumer": await fetch(f"{consumer.metrics_url}/metrics"),
        }
        response = await management.client.get("/metrics")
        assert response.status == 200, await response.text()
        expositions["management-api"] = await response.text()
    finally:
        consumer.stop()
    for service, text in expositions.items():
        promtool_check(service, text)

    # Per-API labels: the first two APIs keep theirs, the third is folded; the cap is two.
    assert 'ingress_requests_total{api_id="iris",status="200",version="1"} 1.0' in ingress_text
    assert 'ingress_requests_total{api_id="house",status="200",version="1"} 1.0' in ingress_text
    assert 'ingress_requests_total{api_id="other",status="200",version="1"} 1.0' in ingress_text
    assert 'api_id="limited"' not in ingress_text
    assert 'ingress_requests_total{api_id="iris",status="401",version="1"} 1.0' in ingress_text
    assert 'ingress_requests_total{api_id="unknown",status="401",version=""} 1.0' in ingress_text
    assert "no-such-api" not in ingress_text  # any text can be sent as an API id: never a label
    assert 'ingress_request_duration_seconds_count{api_id="iris"} 2.0' in ingress_text
    assert "ingress_metric_api_labels_folded 1.0" in ingress_text
    assert re.search(r"predictor_rows_total [1-9]", expositions["predictor"])
    assert re.search(
        r"modelgate_consumer_events_inserted_total [1-9]", expositions["metrics-consumer"]
    )
    assert (
        'management_http_requests_total{method="GET",route="/api/users/me",status="401"} 1.0'
        in expositions["management-api"]
    )


async def test_management_metrics_need_loopback_or_the_metrics_token(make_api: MakeApi) -> None:
    """Through a proxy (a forwarding header), or without the token once one is set: 403."""
    open_api = await make_api()
    proxied = await open_api.client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert proxied.status == 403
    assert (await proxied.json())["error"]["code"] == "FORBIDDEN"

    guarded = await make_api(management_metrics_token="s3cret-scrape-token")
    assert (await guarded.client.get("/metrics")).status == 403
    wrong = await guarded.client.get("/metrics", headers={"Authorization": "Bearer nope"})
    assert wrong.status == 403
    right = await guarded.client.get(
        "/metrics",
        headers={"Authorization": "Bearer s3cret-scrape-token", "X-Forwarded-For": "203.0.113.9"},
    )
    assert right.status == 200
    assert "management_http_requests_total" in await right.text()


async def test_a_trace_id_is_answered_handed_to_the_predictor_and_stored_with_the_request(
    world: PredictionWorld,
    start_ingress: Any,
    start_worker: Any,
    clickhouse_server: str,
    ch_database: str,
    namespace: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="predictor.trace")
    await migrate_database(clickhouse_server, ch_database)
    consumer = ConsumerProcess(
        tmp_path,
        consumer_env(namespace, clickhouse_server, ch_database, consumer_flush_interval_s=0.2),
    )
    consumer.start()
    given_trace, given_parent = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
    sent = {
        "valid": f"00-{given_trace}-{given_parent}-01",
        "uppercase": f"00-{given_trace.upper()}-{given_parent}-01",
        "zero trace id": f"00-{'0' * 32}-{given_parent}-01",
        "garbage": "not a traceparent",
        "absent": None,
    }
    answers: dict[str, tuple[str, str]] = {}  # request id, traceparent answered
    try:
        await start_worker()
        ingress = await start_ingress()
        async with aiohttp.ClientSession() as http:
            for case, value in sent.items():
                headers = {"X-API-Key": world.keys["iris"]}
                if value is not None:
                    headers["traceparent"] = value
                async with http.post(
                    f"{ingress.url}/api/predict/iris", json=IRIS_ROW, headers=headers
                ) as response:
                    assert response.status == 200, (case, await response.text())
                    body = await response.json()
                    answers[case] = (body["request_id"], response.headers["traceparent"])
            # The Open Inference Protocol route carries it the same way.
            oip_body = {
                "inputs": [
                    {"name": "input", "datatype": "FP64", "shape": [1, 4], "data": oip_row()}
                ]
            }
            async with http.post(
                f"{ingress.url}/v2/models/iris/infer",
                json=oip_body,
                headers={"X-API-Key": world.keys["iris"], "traceparent": OIP_TRACEPARENT},
            ) as response:
                assert response.status == 200, await response.text()
                oip = await response.json()
                answers["oip"] = (oip["parameters"]["request_id"], response.headers["traceparent"])
            # An error answer names its trace too.
            async with http.post(
                f"{ingress.url}/api/predict/iris", json={}, headers={"traceparent": sent["valid"]}
            ) as response:
                assert response.status == 401
                assert parse_traceparent(response.headers["traceparent"]).trace_id == given_trace  # type: ignore[union-attr]
        await wait_for_count(clickhouse_server, ch_database, 7, timeout=60, what="events")
    finally:
        consumer.stop()

    answered = {case: parse_traceparent(header) for case, (_, header) in answers.items()}
    assert all(context is not None for context in answered.values()), answers
    valid = answered["valid"]
    assert valid is not None and valid.trace_id == given_trace
    assert valid.parent_id != given_parent  # ingress's own span is the parent now
    assert valid.flags == 1
    assert answered["oip"] is not None and answered["oip"].trace_id == OIP_TRACEPARENT[3:35]
    new_traces = {answered[c].trace_id for c in sent if c != "valid"}  # type: ignore[union-attr]
    assert given_trace not in new_traces and len(new_traces) == 4  # each a trace of its own

    client = await create_async_client(clickhouse_server)
    try:
        rows = await client.query(
            f"SELECT event_id, trace_id FROM {ch_database}.request_events WHERE status_code = 200"
        )
        stored = dict(rows.result_rows)
        found = await client.query(
            f"SELECT count() FROM {ch_database}.requests WHERE trace_id = {{t:String}}",
            parameters={"t": given_trace},
        )
    finally:
        await client.close()
    for case, (request_id, _) in answers.items():
        assert stored[request_id] == answered[case].trace_id, case  # type: ignore[union-attr]
    assert found.result_rows[0][0] == 2  # the valid request and the 401, in the analysts' view

    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "predictor.trace")
    for case, (request_id, _) in answers.items():
        context = answered[case]
        assert context is not None
        assert f"trace={context.trace_id} parent={context.parent_id} request={request_id}" in (
            logged
        ), case
