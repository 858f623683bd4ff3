"""``POST /api/predict/{api_id}/feedback``: the true answers of predictions, reported by clients.

Body ``{"request_id": str, "actual": scalar}`` or ``{"items": [...]}`` (at most ``MAX_ITEMS``),
with the API's key as for predictions. Every item is checked before anything is sent: a bad body
(a request reported twice in it included) is a 400 naming the item and field, and nothing of it
is stored. The items leave as one
``FeedbackBatch`` on the ``events`` exchange (routing key ``feedback``) with publisher confirms,
and the answer (202 ``{"accepted": n}``) is written only once the broker confirmed it: an answered
report is durable in the broker (its queue is a quorum queue), an unconfirmed one is a 503 the
client retries. So no spool is needed, unlike request events, which cannot hold up the
prediction's answer. The metrics consumer stores each report once (``feedback_id``).

Feedback has its own budget per API (``ingress_feedback_items_per_minute``, counted in items,
not requests): labelling traffic never eats the prediction rate limit, and a flood of feedback
cannot grow the broker's queue without bound.
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from infra import amqp, http
from ingress.errors import IngressError
from ingress.ids import new_id
from ingress.registry import ApiEntry, Registry
from schemas import ErrorCode
from schemas.messages import Feedback, FeedbackBatch, encode, utc_from_epoch

MAX_ITEMS = 1000
"""Reports per request at most."""
MAX_ACTUAL_CHARS = 200
"""An ``actual`` text at most this long (predictions are stored cut at 200 characters)."""
REQUEST_ID = re.compile(r"[0-9a-f]{32}")
"""Request ids as ingress makes them (``ingress.ids``): 32 lowercase hex digits."""
MAX_BUCKETS = 10_000
"""APIs with a feedback budget held at once (least recently used ones are forgotten: full)."""
JSON_HEADERS = {"Content-Type": "application/json"}

Publish = Callable[[str, bytes], Awaitable[None]]
"""Publishes one encoded ``FeedbackBatch`` with its batch id; raises when not confirmed."""


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float


class FeedbackBudget:
    """A token bucket of items per minute per API, in this process (the prediction limit's
    replica shares are not needed for a guard against floods)."""

    def __init__(self, items_per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(max(1, items_per_minute))
        self.rate = self.capacity / 60.0
        self._clock = clock
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()

    def take(self, api_id: str, items: int) -> float:
        """0 when ``items`` may pass now (taken), else the seconds until they may."""
        now = self._clock()
        bucket = self._buckets.get(api_id)
        if bucket is None:
            bucket = self._buckets[api_id] = _Bucket(self.capacity, now)
            if len(self._buckets) > MAX_BUCKETS:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(api_id)
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
        if items > self.capacity:
            return math.inf
        if bucket.tokens >= items:
            bucket.tokens -= items
            return 0.0
        return (items - bucket.tokens) / self.rate


def actual_text(value: Any, classifier: bool) -> str | None:
    """``actual`` written as ingress stores predictions (``str`` of the JSON value), so that the
    two compare as text; None when it is no valid truth for the API's task. A classifier's
    whole-number float (``1.0``) is its integer's text (``"1"``), as a label 1 is predicted."""
    if isinstance(value, bool):
        return str(value) if classifier else None
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            return None
        if classifier and value.is_integer():
            return str(int(value))
        return repr(value)
    if isinstance(value, str) and classifier and 0 < len(value) <= MAX_ACTUAL_CHARS:
        return value
    return None


def _invalid(message: str, details: dict[str, Any]) -> IngressError:
    return IngressError(400, ErrorCode.INVALID_INPUT, message, details)


def parse_items(body: bytes, classifier: bool) -> list[tuple[str, str]]:
    """(request id, actual text) of every report of a body; ``IngressError`` 400 for the first
    thing wrong (nothing is sent then)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise IngressError(
            400, ErrorCode.INVALID_JSON, "the body is not valid JSON", {"reason": str(exc)}
        ) from None
    if not isinstance(payload, dict):
        raise _invalid(
            'the body must be {"request_id": ..., "actual": ...} or {"items": [...]}',
            {"body": "expected an object"},
        )
    if "items" in payload:
        items = payload["items"]
        if set(payload) != {"items"}:
            extra = sorted(set(payload) - {"items"})
            raise _invalid("unexpected fields beside items", {"unexpected": extra[:10]})
        if not isinstance(items, list) or not items:
            raise _invalid('"items" must be a non-empty list', {"items": "expected an array"})
        if len(items) > MAX_ITEMS:
            raise _invalid(
                f"at most {MAX_ITEMS} items per request",
                {"max_items": MAX_ITEMS, "items": len(items)},
            )
        where = "items."
    else:
        items, where = [payload], ""
    task = "classification" if classifier else "regression"
    parsed: list[tuple[str, str]] = []
    first_at: dict[str, str] = {}
    for n, item in enumerate(items):
        at = f"{where}{n}" if where else "body"
        if not isinstance(item, dict):
            raise _invalid("each item must be an object", {"item": at})
        unexpected = sorted(set(item) - {"request_id", "actual"})
        if unexpected:
            raise _invalid("unexpected fields", {"item": at, "unexpected": unexpected[:10]})
        request_id = item.get("request_id")
        if request_id is None:
            raise _invalid("request_id is required", {"item": at, "request_id": "field required"})
        if not isinstance(request_id, str) or not REQUEST_ID.fullmatch(request_id):
            raise _invalid(
                "request_id must be the request_id a prediction answered with (32 hex digits)",
                {"item": at, "request_id": "expected 32 lowercase hex digits"},
            )
        if request_id in first_at:
            # Two truths for one request in one batch share their received_at: the retraining
            # export would pick either. One report per request and batch, then.
            raise _invalid(
                f"request_id {request_id} is reported twice in this batch; send one report per "
                "request (a later request may correct it)",
                {"item": at, "request_id": "duplicate", "first": first_at[request_id]},
            )
        first_at[request_id] = at
        if "actual" not in item:
            raise _invalid("actual is required", {"item": at, "actual": "field required"})
        actual = actual_text(item["actual"], classifier)
        if actual is None:
            expected = (
                f"a class label (string, integer or boolean, at most {MAX_ACTUAL_CHARS} chars)"
                if classifier
                else "a finite number"
            )
            raise _invalid(
                f"actual must be {expected} for a {task} API",
                {"item": at, "actual": f"expected {expected}"},
            )
        parsed.append((request_id, actual))
    return parsed


class FeedbackService:
    """Checks the key and body of a feedback request and publishes its reports (no socket)."""

    def __init__(
        self,
        registry: Registry,
        budget: FeedbackBudget,
        publish: Publish,
        ingress_id: str,
        max_body_bytes: int,
    ) -> None:
        self.registry = registry
        self.budget = budget
        self.publish = publish
        self.ingress_id = ingress_id
        self.max_body_bytes = max_body_bytes
        self.accepted = 0

    def authenticate(self, api_id: str, api_key: str | None) -> ApiEntry:
        """The API whose key this is, checked as the prediction route checks it."""
        if not self.registry.ready:
            raise IngressError(
                503,
                ErrorCode.REGISTRY_NOT_READY,
                "ingress is starting and does not know the APIs yet; try again shortly",
            )
        entry = self.registry.get(api_id)
        if not api_key:
            raise IngressError(
                401,
                ErrorCode.MISSING_API_KEY,
                "an API key is required in the X-API-Key header (or Authorization: Bearer)",
            )
        if entry is None:
            raise IngressError(404, ErrorCode.API_NOT_FOUND, f"no API {api_id[:64]!r}")
        if not entry.key_matches(api_key):
            raise IngressError(403, ErrorCode.INVALID_API_KEY, "the API key is not valid")
        if not entry.active:
            raise IngressError(403, ErrorCode.API_INACTIVE, "this API is inactive")
        return entry

    async def submit(
        self, api_id: str, api_key: str | None, body: Callable[[], Awaitable[bytes]]
    ) -> int:
        """Publish the reports of one request; returns how many (raises ``IngressError``)."""
        entry = self.authenticate(api_id, api_key)
        items = parse_items(await body(), entry.classifier)
        wait_s = self.budget.take(entry.api_id, len(items))
        if wait_s:
            retry = max(1, math.ceil(wait_s)) if math.isfinite(wait_s) else 60
            limit = int(self.budget.capacity)
            raise IngressError(
                429,
                ErrorCode.RATE_LIMITED,
                f"feedback budget of {limit} items per minute exceeded",
                {"limit_per_minute": limit, "retry_after_s": retry},
                headers={"Retry-After": str(retry)},
            )
        received_at = utc_from_epoch(time.time())
        batch = FeedbackBatch(
            batch_id=new_id(),
            ingress_id=self.ingress_id,
            items=[
                Feedback(
                    feedback_id=new_id(),
                    request_id=request_id,
                    api_id=entry.api_id,
                    actual=actual,
                    received_at=received_at,
                    key_prefix=entry.key_prefix,
                )
                for request_id, actual in items
            ],
        )
        try:
            await self.publish(batch.batch_id, encode(batch))
        except amqp.BrokerUnavailable as exc:
            raise IngressError(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                "feedback could not be stored now (message broker unavailable); nothing was "
                "kept, send it again",
                {"reason": str(exc)[:200]},
            ) from None
        except amqp.PublishRefused as exc:
            raise IngressError(
                503,
                ErrorCode.SERVICE_UNAVAILABLE,
                "feedback was refused by the message broker; nothing was kept, send it again",
                {"reason": str(exc)[:200]},
            ) from None
        self.accepted += len(items)
        return len(items)


FEEDBACK_SERVICE = web.AppKey("feedback", FeedbackService)


def _api_key(request: web.Request) -> str | None:
    key = request.headers.get("X-API-Key")
    if key:
        return key
    auth = request.headers.get("Authorization")
    if auth and auth[:7].lower() == "bearer ":
        return auth[7:].strip() or None
    return None


async def feedback_view(request: web.Request) -> web.Response:
    """``POST /api/predict/{api_id}/feedback``."""
    service = request.app[FEEDBACK_SERVICE]

    async def read_body() -> bytes:
        media = request.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()
        if media != "application/json":
            raise IngressError(
                415,
                ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                "the body must be JSON (Content-Type: application/json)",
                {"content_type": media[:100]},
            )
        try:
            return await http.read_body(request, service.max_body_bytes)
        except http.BodyError as exc:
            raise IngressError(exc.status, ErrorCode(exc.code), exc.message, exc.details) from None

    try:
        accepted = await service.submit(request.match_info["api_id"], _api_key(request), read_body)
    except IngressError as exc:
        headers = {**JSON_HEADERS, **(exc.headers or {})}
        return web.Response(status=exc.status, body=exc.body(), headers=headers)
    return web.Response(status=202, body=orjson.dumps({"accepted": accepted}), headers=JSON_HEADERS)


def add_routes(app: web.Application, service: FeedbackService) -> None:
    """Register the feedback route and its service on the ingress app."""
    app[FEEDBACK_SERVICE] = service
    app.router.add_post("/api/predict/{api_id}/feedback", feedback_view)
