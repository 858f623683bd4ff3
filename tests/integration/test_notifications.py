"""Alert notifications on the real broker: a transition published on the events exchange reaches
the owner's webhook once, signed, and their e-mail address through SMTP; a failing receiver is
retried with growing delays through the retry queues, then dead-lettered and logged as failed.

The receivers are local (an aiohttp server and aiosmtpd on 127.0.0.1), so the app allows private
destinations (``MODELGATE_MANAGEMENT_WEBHOOK_ALLOW_PRIVATE``)."""

from __future__ import annotations

import asyncio
import itertools
import socket
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import Message
from email.parser import BytesParser
from typing import Any

import orjson
import pytest
from aio_pika.abc import AbstractRobustConnection
from aiohttp import web
from aiohttp.test_utils import TestServer
from aiosmtpd.controller import Controller

from infra import amqp as amqp_io
from infra.topology import DeclaredTopology
from management_api.notifier import dead_queue, queue_names
from management_api.webhooks import verify
from schemas.alerts import ALERT_TRANSITION_KEY, AlertRuleKind, AlertState, AlertTransition
from tests.management_support import Api, MakeApi


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float


@dataclass
class Receiver:
    """A webhook receiver: ``/ok`` answers 204, ``/fail`` answers 500; every request is kept."""

    server: TestServer
    requests: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return str(self.server.make_url(path))

    def to(self, path: str) -> list[Received]:
        return [r for r in self.requests if r.path == path]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    app = web.Application()
    server = TestServer(app, host="127.0.0.1")
    recv = Receiver(server)

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        recv.requests.append(Received(request.path, dict(request.headers), body, time.monotonic()))
        return web.Response(status=500 if request.path == "/fail" else 204, text="")

    app.router.add_post("/{tail:.*}", handle)
    await server.start_server()
    yield recv
    await server.close()


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(BytesParser().parsebytes(envelope.content))
        return "250 OK"


@pytest.fixture
def smtp() -> Any:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mailbox = Mailbox()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield mailbox, port
    controller.stop()


async def until(check: Any, what: str, timeout: float = 30.0) -> Any:
    """Poll ``check()`` (sync or async) until it is truthy; bounded."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


def transition(owner_id: str, **overrides: Any) -> AlertTransition:
    values: dict[str, Any] = {
        "transition_id": uuid.uuid4().hex,
        "rule_id": "rule-5xx",
        "api_id": "a" * 32,
        "api_name": "churn",
        "owner_id": owner_id,
        "kind": AlertRuleKind.ERROR_RATE_5XX,
        "from_state": AlertState.PENDING,
        "to_state": AlertState.FIRING,
        "value": 0.2,
        "threshold": 0.05,
        "window_s": 300,
        "for_s": 60,
        "at": datetime.now(UTC),
    }
    values.update(overrides)
    return AlertTransition(**values)


async def publish(topology: DeclaredTopology, item: AlertTransition, **extra: Any) -> None:
    body = orjson.dumps({**item.model_dump(mode="json"), **extra})
    await amqp_io.publish(topology.events, body, ALERT_TRANSITION_KEY)


async def cleanup(api: Api, amqp: AbstractRobustConnection) -> None:
    """Stop the app, then delete the notifier's queues (not part of the namespace topology)."""
    await api.client.close()
    channel = await amqp.channel()
    s = api.settings
    for name in queue_names(
        s.namespace, s.management_webhook_retry_base_s, s.management_webhook_max_attempts
    ):
        await channel.queue_delete(name)
    await channel.close()


async def user_id(api: Api, headers: dict[str, str]) -> str:
    _, me = await api.call("GET", "/api/users/me", headers)
    return str(me["id"])


async def test_transition_reaches_the_owners_webhook_once_signed_and_by_email(
    make_api: MakeApi,
    topology: DeclaredTopology,
    amqp: AbstractRobustConnection,
    receiver: Receiver,
    smtp: Any,
) -> None:
    mailbox, smtp_port = smtp
    api = await make_api(
        management_webhook_allow_private=True,
        management_smtp_host="127.0.0.1",
        management_smtp_port=smtp_port,
        management_smtp_from="alerts@modelgate.test",
        management_public_url="https://mg.example",
    )
    try:
        alice, bob = await api.new_user("alice"), await api.new_user("bob")
        status, hook = await api.call(
            "POST", "/api/webhooks", alice, json={"name": "ops", "url": receiver.url("/ok")}
        )
        assert status == 201 and hook["secret"].startswith("whsec_"), hook
        status, mail = await api.call(
            "POST",
            "/api/webhooks",
            alice,
            json={"name": "pager", "type": "email", "email": "alice@example.com"},
        )
        assert status == 201, mail
        _, listed = await api.call("GET", "/api/webhooks", alice)
        assert [h["id"] for h in listed["items"]] == [hook["id"], mail["id"]]
        assert all("secret" not in h for h in listed["items"])  # shown once
        _, bobs = await api.call("GET", "/api/webhooks", bob)
        assert bobs["items"] == []

        owner = await user_id(api, alice)
        # Not notified: silenced, a pending transition, another user's API.
        await publish(topology, transition(owner), silenced=True)
        await publish(topology, transition(owner, from_state="ok", to_state="pending"))
        await publish(topology, transition(await user_id(api, bob)))
        firing = transition(owner)
        await publish(topology, firing)

        got = (await until(lambda: receiver.to("/ok"), "the webhook POST"))[0]
        payload = orjson.loads(got.body)
        assert payload["transition_id"] == firing.transition_id
        assert payload["state"] == {"from": "pending", "to": "firing"}
        assert payload["rule"] == {"id": "rule-5xx", "kind": "error_rate_5xx"}
        assert payload["links"]["dashboard"] == f"https://mg.example/monitoring/{'a' * 32}"
        assert got.headers["X-Modelgate-Event"] == firing.transition_id
        assert verify(
            hook["secret"],
            got.headers["X-Modelgate-Timestamp"],
            got.body,
            got.headers["X-Modelgate-Signature"],
        )

        email = (await until(lambda: mailbox.messages, "the e-mail"))[0]
        assert email["To"] == "alice@example.com" and email["From"] == "alerts@modelgate.test"
        assert "[FIRING] churn" in email["Subject"]
        assert email["X-Modelgate-Event"] == firing.transition_id

        async def logged() -> list[dict[str, Any]]:
            _, log = await api.call("GET", f"/api/webhooks/{hook['id']}/deliveries", alice)
            return [d for d in log["items"] if d["status"] == "delivered"]

        [delivery] = await until(logged, "the delivery log")
        assert delivery["attempts"] == 1 and delivery["response_status"] == 204
        assert delivery["event_id"] == firing.transition_id and delivery["latency_ms"] > 0
        assert got.headers["X-Modelgate-Delivery"] == delivery["id"]

        # The test button delivers now, signed with the rotated secret.
        status, rotated = await api.call("POST", f"/api/webhooks/{hook['id']}/rotate-secret", alice)
        assert status == 200 and rotated["secret"] != hook["secret"]
        status, tested = await api.call("POST", f"/api/webhooks/{hook['id']}/test", alice)
        assert status == 200 and tested["status"] == "delivered" and tested["event"] == "test"
        test_post = receiver.to("/ok")[-1]
        assert orjson.loads(test_post.body)["event"] == "test"
        assert verify(
            rotated["secret"],
            test_post.headers["X-Modelgate-Timestamp"],
            test_post.body,
            test_post.headers["X-Modelgate-Signature"],
        )
        # Exactly one POST for the transition (the other three were never delivered).
        assert len(receiver.to("/ok")) == 2 and len(mailbox.messages) == 1

        # Bob cannot see, change, test or delete Alice's endpoint.
        for method, path, body in [
            ("PATCH", f"/api/webhooks/{hook['id']}", {"enabled": False}),
            ("DELETE", f"/api/webhooks/{hook['id']}", None),
            ("POST", f"/api/webhooks/{hook['id']}/test", None),
            ("POST", f"/api/webhooks/{hook['id']}/rotate-secret", None),
            ("GET", f"/api/webhooks/{hook['id']}/deliveries", None),
        ]:
            status, err = await api.call(method, path, bob, json=body)
            assert status == 404 and err["error"]["code"] == "NOT_FOUND", (method, path, err)
        assert len(receiver.to("/ok")) == 2

        # Bad input is refused, nothing created.
        for bad in [
            {"name": "x", "url": "ftp://example.com/"},
            {"name": "x", "url": receiver.url("/ok"), "format": "xml"},
            {"name": "x", "url": receiver.url("/ok"), "api_id": "f" * 32},  # not Alice's API
            {"name": "x", "type": "email", "url": receiver.url("/ok")},
        ]:
            status, err = await api.call("POST", "/api/webhooks", alice, json=bad)
            assert status == 400, (bad, err)
        _, listed = await api.call("GET", "/api/webhooks", alice)
        assert len(listed["items"]) == 2

        status, changed = await api.call(
            "PATCH", f"/api/webhooks/{hook['id']}", alice, json={"format": "slack"}
        )
        assert status == 200 and changed["format"] == "slack"
        status, _ = await api.call("DELETE", f"/api/webhooks/{mail['id']}", alice)
        assert status == 204
    finally:
        await cleanup(api, amqp)


async def test_failing_receiver_is_retried_with_backoff_then_dead_lettered(
    make_api: MakeApi,
    topology: DeclaredTopology,
    amqp: AbstractRobustConnection,
    receiver: Receiver,
) -> None:
    api = await make_api(
        management_webhook_allow_private=True,
        management_webhook_max_attempts=3,
        management_webhook_retry_base_s=0.3,
    )
    try:
        alice = await api.new_user("alice")
        status, hook = await api.call(
            "POST", "/api/webhooks", alice, json={"name": "down", "url": receiver.url("/fail")}
        )
        assert status == 201
        firing = transition(await user_id(api, alice))
        await publish(topology, firing)

        async def failed() -> list[dict[str, Any]]:
            _, log = await api.call("GET", f"/api/webhooks/{hook['id']}/deliveries", alice)
            return [d for d in log["items"] if d["status"] == "failed"]

        [delivery] = await until(failed, "the delivery to fail")
        assert delivery["attempts"] == 3 and delivery["response_status"] == 500
        assert delivery["last_error"].startswith("HTTP 500")

        posts = receiver.to("/fail")
        assert len(posts) == 3
        assert {p.headers["X-Modelgate-Delivery"] for p in posts} == {delivery["id"]}
        assert {p.headers["X-Modelgate-Event"] for p in posts} == {firing.transition_id}
        # Each retry waited its queue's TTL: 0.3 s, then 0.6 s (lower bounds, never upper).
        gaps = [b.at - a.at for a, b in itertools.pairwise(posts)]
        assert gaps[0] >= 0.3 * 0.9 and gaps[1] >= 0.6 * 0.9 and gaps[1] > gaps[0], gaps

        channel = await amqp.channel()
        dead = await channel.declare_queue(dead_queue(api.settings.namespace), passive=True)
        message = await until(lambda: dead.get(fail=False), "the dead-lettered delivery")
        assert orjson.loads(message.body) == {"delivery_id": delivery["id"], "attempts": 3}
        await message.ack()
        await channel.close()
    finally:
        await cleanup(api, amqp)


async def test_two_processes_deliver_each_transition_once_to_matching_endpoints(
    make_api: MakeApi,
    topology: DeclaredTopology,
    amqp: AbstractRobustConnection,
    receiver: Receiver,
) -> None:
    """Two management APIs on one namespace and database share the notifier's queues: every
    transition reaches each matching endpoint once; an endpoint kept to one API gets only its."""
    first = await make_api(management_webhook_allow_private=True)
    second = await make_api(management_webhook_allow_private=True)
    try:
        alice = await first.new_user("alice")
        job = await first.train_builtin(alice, "iris")
        served = (await first.export(alice, job["model_id"]))["api"]["id"]
        for name, path, scope in [("all", "/all", None), ("one", "/one", served)]:
            status, hook = await second.call(
                "POST",
                "/api/webhooks",
                alice,
                json={"name": name, "url": receiver.url(path), "api_id": scope},
            )
            assert status == 201, hook
        owner = await user_id(first, alice)
        sent = [transition(owner, api_id=served if i % 2 else "b" * 32) for i in range(20)]
        for item in sent:
            await publish(topology, item)

        await until(lambda: len(receiver.to("/all")) >= 20, "20 POSTs to the all-APIs endpoint")
        await until(lambda: len(receiver.to("/one")) >= 10, "10 POSTs to the one-API endpoint")
        events = sorted(r.headers["X-Modelgate-Event"] for r in receiver.to("/all"))
        assert events == sorted(t.transition_id for t in sent)  # each once
        one = sorted(r.headers["X-Modelgate-Event"] for r in receiver.to("/one"))
        assert one == sorted(t.transition_id for t in sent if t.api_id == served)
    finally:
        await second.client.close()
        await cleanup(first, amqp)
