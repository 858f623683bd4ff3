"""Issue 12 as an attacker sees it: webhook destinations written so that the URL checks read one
host and the HTTP client connects to another, and the other holes found in the alerting and
notification routes. Each test failed before its fix."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.management_support import Api, MakeApi


@pytest.fixture
async def loopback_receiver() -> AsyncIterator[tuple[TestServer, list[str]]]:
    """A receiver on 127.0.0.1, where no webhook may reach by default: it counts every request."""
    app = web.Application()
    server = TestServer(app, host="127.0.0.1")
    hits: list[str] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(request.path)
        return web.Response(text="internal secret page")

    app.router.add_route("*", "/{tail:.*}", handle)
    await server.start_server()
    yield server, hits
    await server.close()


@pytest.mark.parametrize(
    "host",
    [
        "127\u30020\u30020\u30021",  # ideographic full stops: IDNA maps them to dots
        "\u2460\u2461\u2466.0.0.1",  # circled digits: NFKC maps them to 127
        "\uff11\uff12\uff17.0.0.1",  # full-width digits
    ],
)
async def test_a_webhook_url_that_idna_turns_into_loopback_is_refused(
    api: Api, loopback_receiver: tuple[TestServer, list[str]], host: str
) -> None:
    """urlsplit reads these hosts as names (not private literals) while aiohttp connects to
    127.0.0.1, as a literal it does not resolve (so the resolver's check never ran): the test
    delivery posted to loopback and handed its status and answer back to the user."""
    server, hits = loopback_receiver
    user = await api.new_user("mallory")
    url = f"http://{host}:{server.port}/admin"
    status, body = await api.call(
        "POST", "/api/webhooks", user, json={"name": "x", "url": url, "format": "json"}
    )
    if status == 201:  # refused at delivery is also acceptable, reaching the receiver is not
        status_t, delivery = await api.call("POST", f"/api/webhooks/{body['id']}/test", user)
        assert status_t == 200, delivery
        assert delivery["status"] == "failed", delivery
        assert delivery["response_status"] is None, delivery
        assert "internal secret page" not in (delivery["last_error"] or "")
    else:
        assert status == 400, body
        assert body["error"]["code"] == "INVALID_INPUT"
    assert hits == []


async def test_a_user_cannot_add_endpoints_without_bound(api: Api) -> None:
    """Every firing or resolved transition is posted to each endpoint of its owner: with no bound,
    one user's thousands of endpoints on one victim URL turned each transition into thousands of
    signed requests (and delivery rows). At most MAX_ENDPOINTS_PER_USER; then 409, nothing added,
    and other users keep their own allowance."""
    from management_api.webhooks import MAX_ENDPOINTS_PER_USER

    user = await api.new_user("hoarder")
    hook = {"name": "victim", "url": "https://victim.example/hook"}
    for _ in range(MAX_ENDPOINTS_PER_USER):
        status, body = await api.call("POST", "/api/webhooks", user, json=hook)
        assert status == 201, body
    status, body = await api.call("POST", "/api/webhooks", user, json=hook)
    assert status == 409, body
    assert body["error"]["code"] == "CONFLICT"
    status, listed = await api.call("GET", "/api/webhooks", user)
    assert status == 200 and len(listed["items"]) == MAX_ENDPOINTS_PER_USER
    other = await api.new_user("neighbour")
    status, body = await api.call("POST", "/api/webhooks", other, json=hook)
    assert status == 201, body


async def _history(api: Api, who: dict[str, str], api_id: str) -> list[tuple[str, str, str]]:
    status, body = await api.call("GET", f"/api/alerts?api_id={api_id}", who)
    assert status == 200, body
    return [(t["rule_id"], t["from_state"], t["to_state"]) for t in body["items"]]


async def test_editing_disabling_or_deleting_a_firing_rule_resolves_it(make_api: MakeApi) -> None:
    """A firing rule whose threshold or window changed, that was disabled or left out of the
    list went back to ok without a transition: the receivers that got its ``firing`` never got
    ``resolved`` (an incident open for ever), and the next firing came as a second ok -> firing.
    Each of these now stores (and so publishes) firing -> resolved, once."""
    api = await make_api(management_alert_evaluation_s=0.2)
    owner = await api.new_user("oncall")
    job = await api.train_builtin(owner, "iris")
    api_id = (await api.export(owner, job["model_id"], name="idle"))["api"]["id"]
    quiet = {"kind": "no_traffic", "threshold": 0, "window_s": 60}
    status, rules = await api.call(
        "PUT", f"/api/exports/{api_id}/alert-rules", owner, json={"rules": [quiet] * 3}
    )
    assert status == 200, rules
    edited, disabled, deleted = (r["id"] for r in rules["items"])

    async def all_firing() -> bool:
        status, body = await api.call("GET", "/api/alerts/active", owner)
        assert status == 200, body
        return sum(a["state"] == "firing" for a in body["items"]) == 3

    deadline = asyncio.get_running_loop().time() + 15
    while not await all_firing():
        assert asyncio.get_running_loop().time() < deadline, "the no_traffic rules never fired"
        await asyncio.sleep(0.05)

    update = [
        {**quiet, "id": edited, "window_s": 120},
        {**quiet, "id": disabled, "enabled": False},
    ]
    status, body = await api.call(
        "PUT", f"/api/exports/{api_id}/alert-rules", owner, json={"rules": update}
    )
    assert status == 200, body
    history = await _history(api, owner, api_id)
    for rule_id in (edited, disabled, deleted):
        assert history.count((rule_id, "firing", "resolved")) == 1, (rule_id, history)
    # Keeping the same rule as it is changes nothing.
    same = [{**quiet, "id": edited, "window_s": 120}, {**quiet, "id": disabled, "enabled": False}]
    assert (
        await api.call("PUT", f"/api/exports/{api_id}/alert-rules", owner, json={"rules": same})
    )[0] == 200
    assert (await _history(api, owner, api_id)).count((edited, "firing", "resolved")) <= 1


async def test_no_series_has_more_than_max_points_whatever_its_bucket(api: Api) -> None:
    """The 1,440-point bound held for sub-minute buckets only: range=30d&bucket=minute answered
    43,200 points (8.7 MB), with by=version twice that and more per version, for any user, as
    often as asked. Every bucket now keeps to MAX_POINTS (400 beyond, as for raw buckets)."""
    from schemas.monitoring import MAX_POINTS

    owner = await api.new_user("hungry")
    for query in ("range=30d&bucket=minute", "range=7d&bucket=minute", "range=30d&bucket=5m"):
        status, body = await api.call("GET", f"/api/monitoring/overview/timeseries?{query}", owner)
        assert status == 400, (query, status, str(body)[:200])
        assert body["error"]["code"] == "INVALID_INPUT"
    for query in ("range=24h&bucket=minute", "range=30d&bucket=hour", "range=7d"):
        status, body = await api.call("GET", f"/api/monitoring/overview/timeseries?{query}", owner)
        assert status == 200, (query, body)
        assert 0 < len(body["points"]) <= MAX_POINTS


def test_a_slack_body_shows_an_api_name_as_text() -> None:
    """Slack reads ``<...>`` in a message's text as a link or a mention: an API named
    ``<!channel>`` pinged the whole channel, ``<https://phish.example|Open>`` made a link in the
    alert. &, < and > are escaped as Slack asks; the dashboard link stays the one link."""
    import orjson

    from management_api.webhooks import alert_payload, render, sample_transition

    name = "<!channel> <https://phish.example|Open in modelgate> & co"
    payload = alert_payload(sample_transition("o", "a", name), "https://mg.example")
    text = orjson.loads(render(payload, "slack"))["text"]
    assert "&lt;!channel&gt; &lt;https://phish.example|Open in modelgate&gt; &amp; co" in text
    assert text.count("<") == 1 and text.endswith(
        "<https://mg.example/monitoring/a|Open in modelgate>"
    )
