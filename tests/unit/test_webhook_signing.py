"""Webhook notifications without a network: the signature a receiver recomputes, the JSON and
Slack bodies, and which destinations the SSRF guard lets through."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import orjson
import pytest

from management_api.webhooks import (
    DestinationRefused,
    GuardedResolver,
    WebhookCreate,
    address_allowed,
    alert_payload,
    check_url,
    render,
    sign,
    signed_headers,
    verify,
)
from schemas.alerts import AlertRuleKind, AlertState, AlertTransition

TRANSITION = AlertTransition(
    transition_id="t-1",
    rule_id="r-1",
    api_id="a" * 32,
    api_name="churn",
    owner_id="u" * 32,
    kind=AlertRuleKind.P95_MS,
    from_state=AlertState.PENDING,
    to_state=AlertState.FIRING,
    value=812.5,
    threshold=500.0,
    window_s=300,
    for_s=60,
    at=datetime(2026, 12, 1, 1, 2, 3, tzinfo=UTC),
)


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    body = b'{"a":1}'
    expected = hmac.new(b"s3cret", b"1764550923." + body, hashlib.sha256).hexdigest()
    assert sign("s3cret", 1764550923, body) == f"sha256={expected}"

    headers = signed_headers("s3cret", body, "d-1", "t-1")
    assert headers["X-Modelgate-Delivery"] == "d-1" and headers["X-Modelgate-Event"] == "t-1"
    ts = headers["X-Modelgate-Timestamp"]
    assert verify("s3cret", ts, body, headers["X-Modelgate-Signature"])
    assert not verify("other", ts, body, headers["X-Modelgate-Signature"])
    assert not verify("s3cret", ts, body + b" ", headers["X-Modelgate-Signature"])
    # A replay older than 5 minutes is refused even with its valid signature.
    old = int(time.time()) - 301
    assert not verify("s3cret", str(old), body, sign("s3cret", old, body))


def test_json_body_carries_api_rule_state_figures_and_link() -> None:
    payload = alert_payload(TRANSITION, "https://mg.example")
    assert orjson.loads(render(payload, "json")) == {
        "event": "alert",
        "transition_id": "t-1",
        "api": {"id": "a" * 32, "name": "churn"},
        "rule": {"id": "r-1", "kind": "p95_ms"},
        "state": {"from": "pending", "to": "firing"},
        "value": 812.5,
        "threshold": 500.0,
        "window_s": 300,
        "for_s": 60,
        "at": "2026-12-01T01:02:03+00:00",
        "links": {"dashboard": f"https://mg.example/monitoring/{'a' * 32}"},
    }


def test_slack_body_is_one_text_field() -> None:
    body = orjson.loads(render(alert_payload(TRANSITION, "https://mg.example"), "slack"))
    assert list(body) == ["text"]
    assert body["text"].startswith("[FIRING] churn: p95_ms = 812.5 (threshold 500")
    assert f"<https://mg.example/monitoring/{'a' * 32}|" in body["text"]


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",
        "0.0.0.0",
        "224.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
    ],
)
def test_private_loopback_link_local_addresses_are_refused(address: str) -> None:
    assert not address_allowed(address)


def test_global_addresses_pass_and_private_ones_only_when_allowed() -> None:
    assert address_allowed("93.184.215.14") and address_allowed("2606:4700::1111")
    assert address_allowed("127.0.0.1", allow_private=True)
    assert not address_allowed("0.0.0.0", allow_private=True)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/x",
        "file:///etc/passwd",
        "gopher://example.com",
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http:///nohost",
        "http://example.com:99999/",
        "http://exa mple.com/",
        "http://[::1/",  # urlsplit raises on it
    ],
)
def test_check_url_refuses(url: str) -> None:
    with pytest.raises(DestinationRefused):
        check_url(url)


def test_check_url_accepts_public_and_private_when_allowed() -> None:
    assert check_url("https://hooks.slack.com/services/T/B/X")
    assert check_url("http://127.0.0.1:8080/hook", allow_private=True)


async def test_resolver_refuses_a_name_resolving_to_loopback() -> None:
    with pytest.raises(DestinationRefused):
        await GuardedResolver(allow_private=False).resolve("localhost", 80)
    assert await GuardedResolver(allow_private=True).resolve("localhost", 80)


def test_create_body_is_strict() -> None:
    with pytest.raises(ValueError):
        WebhookCreate.model_validate({"name": "x"})  # a webhook needs a url
    with pytest.raises(ValueError):
        WebhookCreate.model_validate({"name": "x", "type": "email", "email": "not-an-address"})
    with pytest.raises(ValueError):
        WebhookCreate.model_validate({"name": "x", "url": "https://e.com", "enabled": "yes"})
    with pytest.raises(ValueError):
        WebhookCreate.model_validate({"name": "a\nb", "url": "https://e.com"})
    ok = WebhookCreate.model_validate({"name": "x", "type": "email", "email": "ops@example.com"})
    assert ok.format == "json" and ok.api_id is None
