"""Notification endpoints (issue 12): each user's webhooks and e-mail addresses, what a
notification says (JSON or Slack body), how it is signed, and one guarded delivery attempt.

A webhook request is signed ``X-Modelgate-Signature: sha256=<hex HMAC-SHA256(secret,
timestamp + "." + body)>`` with ``X-Modelgate-Timestamp`` (unix seconds); receivers recompute it
and refuse timestamps older than 5 minutes (``docs/webhooks.md``). Destinations are checked
against SSRF: http/https only, and unless ``management_webhook_allow_private`` every address the
host resolves to at delivery time must be global (no private, loopback, link-local, multicast or
reserved address); redirects are not followed, the receiver has ``timeout_s`` and at most
``RESPONSE_READ_BYTES`` of its answer is read.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import re
import secrets
import smtplib
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any, Literal, Self
from urllib.parse import urlsplit

import orjson
from aiohttp import ClientSession, ClientTimeout, TCPConnector, web
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from yarl import URL

from management_api.accounts import Principal
from management_api.db import ExportedApi, WebhookDeliveryRow, WebhookRow, new_id, utcnow
from management_api.errors import Conflict, InvalidInput, NotFound
from management_api.settings import ManagementSettings
from schemas.alerts import AlertRuleKind, AlertState, AlertTransition

SIGNATURE_HEADER = "X-Modelgate-Signature"
TIMESTAMP_HEADER = "X-Modelgate-Timestamp"
DELIVERY_HEADER = "X-Modelgate-Delivery"
EVENT_HEADER = "X-Modelgate-Event"
RESPONSE_READ_BYTES = 4096
"""At most this much of a receiver's answer is read (kept as the error text of a failure)."""
MAX_URL_CHARS = 2000
MAX_ENDPOINTS_PER_USER = 50
"""Each transition is posted to every endpoint of its owner: without a bound, one user's
thousands of endpoints on one URL would turn each transition into thousands of requests."""
NOTIFIED_STATES = frozenset({AlertState.FIRING, AlertState.RESOLVED})
"""Transitions that notify (as Alertmanager: firing and resolved; pending and ok do not)."""

_ID = r"^[0-9a-f]{32}$"
_NAME = r"^[^\x00-\x1f\x7f]*\S[^\x00-\x1f\x7f]*$"
_EMAIL = re.compile(r"^[^@\s<>\"',;]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251})$")

Kind = Literal["webhook", "email"]
Format = Literal["json", "slack"]
DeliveryStatus = Literal["pending", "retrying", "delivered", "failed"]


# --- request and response shapes ---------------------------------------------------------------


class WebhookCreate(BaseModel):
    """A new endpoint: a URL (``type: webhook``) or an address (``type: email``)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str = Field(min_length=1, max_length=100, pattern=_NAME)
    type: Kind = "webhook"
    url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    email: str | None = Field(None, min_length=3, max_length=254)
    format: Format = "json"
    api_id: str | None = Field(None, pattern=_ID, description="only this API's alerts (else all)")
    enabled: bool = True

    @model_validator(mode="after")
    def _target(self) -> Self:
        if self.type == "webhook" and (self.url is None or self.email is not None):
            raise ValueError("a webhook takes a url (and no email)")
        if self.type == "email" and (self.email is None or self.url is not None):
            raise ValueError("an email endpoint takes an email (and no url)")
        if self.email is not None and not _EMAIL.match(self.email):
            raise ValueError("email is not an address")
        return self


class WebhookUpdate(BaseModel):
    """Fields to change; ``api_id: null`` widens the endpoint to every API of the owner."""

    model_config = ConfigDict(extra="forbid", strict=True)

    name: str | None = Field(None, min_length=1, max_length=100, pattern=_NAME)
    url: str | None = Field(None, min_length=1, max_length=MAX_URL_CHARS)
    email: str | None = Field(None, min_length=3, max_length=254)
    format: Format | None = None
    api_id: str | None = Field(None, pattern=_ID)
    enabled: bool | None = None

    @model_validator(mode="after")
    def _email(self) -> Self:
        if self.email is not None and not _EMAIL.match(self.email):
            raise ValueError("email is not an address")
        return self


class WebhookPublic(BaseModel):
    id: str
    name: str
    type: Kind
    url: str | None
    email: str | None
    format: Format
    api_id: str | None
    enabled: bool
    created_at: datetime


class WebhookCreated(WebhookPublic):
    secret: str = Field(description="shown in this answer only; rotate it to get a new one")


class WebhookSecret(BaseModel):
    id: str
    secret: str = Field(description="the new secret, shown in this answer only")


class WebhookList(BaseModel):
    items: list[WebhookPublic]


class DeliveryPublic(BaseModel):
    id: str
    webhook_id: str
    event: str = Field(description="`alert` or `test`")
    event_id: str = Field(description="the transition's id (X-Modelgate-Event)")
    status: DeliveryStatus
    attempts: int
    response_status: int | None
    latency_ms: float | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class DeliveryList(BaseModel):
    items: list[DeliveryPublic]


class DeliveriesQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(50, ge=1, le=200)


# --- signing and bodies ------------------------------------------------------------------------


def new_secret() -> str:
    return "whsec_" + secrets.token_urlsafe(32)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """``sha256=<hex HMAC-SHA256(secret, f"{timestamp}." + body)>``."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify(
    secret: str, timestamp: str, body: bytes, signature: str, *, tolerance_s: int = 300
) -> bool:
    """What a receiver does (``docs/webhooks.md``): a fresh timestamp and a matching signature."""
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance_s:
        return False
    return hmac.compare_digest(sign(secret, int(timestamp), body), signature)


def signed_headers(
    secret: str, body: bytes, delivery_id: str, event_id: str, now: float | None = None
) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "Content-Type": "application/json",
        "User-Agent": "modelgate-webhooks/1",
        SIGNATURE_HEADER: sign(secret, timestamp, body),
        TIMESTAMP_HEADER: str(timestamp),
        DELIVERY_HEADER: delivery_id,
        EVENT_HEADER: event_id,
    }


def dashboard_base(settings: ManagementSettings) -> str:
    if settings.management_public_url:
        return settings.management_public_url.rstrip("/")
    host = settings.management_host
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host  # a bind-all is no address
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{settings.management_port}"


def alert_payload(
    transition: AlertTransition, dashboard: str, *, event: str = "alert"
) -> dict[str, Any]:
    """The JSON body of a notification (stored with the delivery, sent as is at every attempt)."""
    return {
        "event": event,
        "transition_id": transition.transition_id,
        "api": {"id": transition.api_id, "name": transition.api_name},
        "rule": {"id": transition.rule_id, "kind": transition.kind.value},
        "state": {"from": transition.from_state.value, "to": transition.to_state.value},
        "value": transition.value,
        "threshold": transition.threshold,
        "window_s": transition.window_s,
        "for_s": transition.for_s,
        "at": transition.at.astimezone(UTC).isoformat(),
        "links": {"dashboard": f"{dashboard}/monitoring/{transition.api_id}"},
    }


def _figure(value: Any) -> str:
    return "no data" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def summary(payload: dict[str, Any]) -> str:
    """One line for humans: Slack text and e-mail subject."""
    state = payload["state"]["to"].upper()
    prefix = "[test] " if payload.get("event") == "test" else ""
    return (
        f"{prefix}[{state}] {payload['api']['name']}: {payload['rule']['kind']} "
        f"= {_figure(payload['value'])} (threshold {_figure(payload['threshold'])}, "
        f"window {payload['window_s']} s)"
    )


def render(payload: dict[str, Any], fmt: str) -> bytes:
    """The request body: the payload as JSON, or Slack's ``{"text": ...}``."""
    if fmt == "slack":
        # Slack reads <...> as links and mentions (<!channel>): the summary is text.
        line = summary(payload).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = f"{line}\n<{payload['links']['dashboard']}|Open in modelgate>"
        return orjson.dumps({"text": text})
    return orjson.dumps(payload)


def sample_transition(owner_id: str, api_id: str | None, api_name: str) -> AlertTransition:
    """The made-up transition a "send test" delivers."""
    return AlertTransition(
        transition_id=f"test-{uuid.uuid4().hex}",
        rule_id="test",
        api_id=api_id or "test",
        api_name=api_name,
        owner_id=owner_id,
        kind=AlertRuleKind.ERROR_RATE_5XX,
        from_state=AlertState.PENDING,
        to_state=AlertState.FIRING,
        value=0.12,
        threshold=0.05,
        window_s=300,
        for_s=60,
        at=datetime.now(UTC),
    )


# --- SSRF guard --------------------------------------------------------------------------------


class DestinationRefused(ValueError):
    """The URL or an address it resolves to is not one a webhook may reach."""


def address_allowed(address: str, allow_private: bool = False) -> bool:
    """A global unicast address (an IPv4-mapped IPv6 address is judged as its IPv4)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if allow_private:
        return not ip.is_multicast and not ip.is_unspecified
    return ip.is_global and not ip.is_multicast


def _literal(host: str) -> str | None:
    try:
        return str(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        return None


def check_url(url: str, allow_private: bool = False) -> str:
    """The URL if a webhook may use it (http/https, a host, not a private literal), else raise."""
    if any(c.isspace() or ord(c) < 32 for c in url):
        raise DestinationRefused("the url holds spaces or control characters")
    try:
        parts = urlsplit(url)
    except ValueError as exc:
        raise DestinationRefused(f"bad url: {exc}") from None
    if parts.scheme not in ("http", "https"):
        raise DestinationRefused("only http and https urls")
    try:
        host = parts.hostname
        parts.port  # noqa: B018 - raises on a bad port
    except ValueError as exc:
        raise DestinationRefused(f"bad url: {exc}") from None
    if not host:
        raise DestinationRefused("the url has no host")
    if not allow_private:
        # The host aiohttp connects to is yarl's, after IDNA: "127\u30020\u30020\u30021" or
        # "\u2460\u2461\u2466.0.0.1" is a name to urlsplit and the literal 127.0.0.1 to yarl,
        # which aiohttp does not resolve (so GuardedResolver never sees it). Both are checked.
        for name in {host, connect_host(url)}:
            literal = _literal(name)
            if literal is not None and not address_allowed(literal):
                raise DestinationRefused(f"{name} is a private, loopback or link-local address")
            bare = name.rstrip(".")
            if bare == "localhost" or bare.endswith((".localhost", ".local", ".internal")):
                raise DestinationRefused(f"{name} is a local name")
    return url


def connect_host(url: str) -> str:
    """The host the HTTP client connects to (yarl's reading of the URL, IDNA applied)."""
    try:
        return (URL(url).raw_host or "").lower()
    except (ValueError, UnicodeError) as exc:
        raise DestinationRefused(f"bad url: {exc}") from None


class GuardedResolver(AbstractResolver):
    """Resolves as aiohttp does, then refuses a host any of whose addresses is not allowed
    (checked at connection time, so a name cannot resolve to a public address at creation and a
    private one at delivery)."""

    def __init__(self, allow_private: bool) -> None:
        self._inner = DefaultResolver()
        self._allow_private = allow_private

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self._inner.resolve(host, port, family)
        for result in results:
            if not address_allowed(result["host"], self._allow_private):
                raise DestinationRefused(f"{host} resolves to {result['host']}, not allowed")
        return results

    async def close(self) -> None:
        await self._inner.close()


# --- one attempt -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    ok: bool
    response_status: int | None
    latency_ms: float
    error: str | None


class Sender:
    """Posts signed webhook requests and sends e-mails; one per process."""

    def __init__(self, settings: ManagementSettings) -> None:
        self.settings = settings
        self._session: ClientSession | None = None

    def _client(self) -> ClientSession:
        if self._session is None or self._session.closed:
            allow = self.settings.management_webhook_allow_private
            self._session = ClientSession(
                connector=TCPConnector(
                    resolver=GuardedResolver(allow), use_dns_cache=False, force_close=True
                ),
                timeout=ClientTimeout(total=self.settings.management_webhook_timeout_s),
                trust_env=False,  # no proxy from the environment
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(
        self, url: str, body: bytes, secret: str, delivery_id: str, event_id: str
    ) -> Attempt:
        started = time.perf_counter()

        def done(ok: bool, status: int | None, error: str | None) -> Attempt:
            return Attempt(ok, status, round((time.perf_counter() - started) * 1000, 3), error)

        allow = self.settings.management_webhook_allow_private
        try:
            check_url(url, allow)
            host = connect_host(url)
            literal = _literal(host)
            if literal is not None and not address_allowed(literal, allow):
                raise DestinationRefused(f"{host} is not an allowed address")
            headers = signed_headers(secret, body, delivery_id, event_id)
            async with self._client().post(
                url, data=body, headers=headers, allow_redirects=False
            ) as response:
                answer = await response.content.read(RESPONSE_READ_BYTES)
                if 200 <= response.status < 300:
                    return done(True, response.status, None)
                text = answer.decode("utf-8", "replace")[:500]
                return done(False, response.status, f"HTTP {response.status}: {text}".strip())
        except DestinationRefused as exc:
            return done(False, None, f"refused destination: {exc}")
        except TimeoutError:
            timeout = self.settings.management_webhook_timeout_s
            return done(False, None, f"no answer within {timeout:g} s")
        except Exception as exc:  # connection refused, reset, TLS, DNS...
            cause = exc.__cause__ if isinstance(exc.__cause__, DestinationRefused) else exc
            return done(False, None, f"{type(cause).__name__}: {cause}"[:500])

    async def mail(self, to: str, payload: dict[str, Any]) -> Attempt:
        started = time.perf_counter()
        s = self.settings
        if not s.management_smtp_host:
            return Attempt(False, None, 0.0, "SMTP is not configured")
        line = " ".join(summary(payload).split())  # no line break can reach a header
        message = EmailMessage()
        message["Subject"] = line
        message["From"] = s.management_smtp_from
        message["To"] = to
        message["X-Modelgate-Event"] = " ".join(str(payload["transition_id"]).split())
        message.set_content(
            f"{line}\n\nState: {payload['state']['from']} -> {payload['state']['to']}"
            f"\nAt: {payload['at']}\nRule: {payload['rule']['id']}\n"
            f"Dashboard: {payload['links']['dashboard']}\n"
        )

        def send() -> None:
            host = s.management_smtp_host or ""
            timeout = s.management_webhook_timeout_s
            with smtplib.SMTP(host, s.management_smtp_port, timeout=timeout) as smtp:
                if s.management_smtp_starttls:
                    smtp.starttls()
                if s.management_smtp_username:
                    smtp.login(s.management_smtp_username, s.management_smtp_password or "")
                smtp.send_message(message)

        try:
            await asyncio.to_thread(send)
        except (OSError, smtplib.SMTPException) as exc:
            latency = (time.perf_counter() - started) * 1000
            return Attempt(False, None, latency, f"{type(exc).__name__}: {exc}"[:500])
        return Attempt(True, None, round((time.perf_counter() - started) * 1000, 3), None)

    async def attempt(self, hook: WebhookRow, delivery_id: str, payload: dict[str, Any]) -> Attempt:
        if hook.kind == "email":
            return await self.mail(hook.email or "", payload)
        body = render(payload, hook.format)
        return await self.post(
            hook.url or "", body, hook.secret, delivery_id, payload["transition_id"]
        )


# --- the endpoints and their delivery log --------------------------------------------------------


def public(row: WebhookRow) -> WebhookPublic:
    return WebhookPublic(
        id=row.id,
        name=row.name,
        type="email" if row.kind == "email" else "webhook",
        url=row.url,
        email=row.email,
        format="slack" if row.format == "slack" else "json",
        api_id=row.api_id,
        enabled=row.enabled,
        created_at=row.created_at,
    )


def delivery_public(row: WebhookDeliveryRow) -> DeliveryPublic:
    return DeliveryPublic.model_validate(
        {
            "id": row.id,
            "webhook_id": row.webhook_id,
            "event": row.event,
            "event_id": row.event_id,
            "status": row.status,
            "attempts": row.attempts,
            "response_status": row.response_status,
            "latency_ms": row.latency_ms,
            "last_error": row.last_error,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
        }
    )


class Webhooks:
    """Users' endpoints (each sees only their own: 404 otherwise) and the delivery log."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: ManagementSettings):
        self._sessions = sessions
        self.settings = settings
        self.sender = Sender(settings)

    async def close(self) -> None:
        await self.sender.close()

    def _check_url(self, url: str) -> None:
        try:
            check_url(url, self.settings.management_webhook_allow_private)
        except DestinationRefused as exc:
            raise InvalidInput(str(exc), details={"field": "url"}) from None

    async def _check_api(self, session: AsyncSession, who: Principal, api_id: str) -> None:
        api = await session.get(ExportedApi, api_id)
        if api is None or api.owner_id != who.user_id:
            raise InvalidInput("no such API of yours", details={"field": "api_id"})

    async def _owned(self, session: AsyncSession, who: Principal, webhook_id: str) -> WebhookRow:
        row = await session.get(WebhookRow, webhook_id)
        if row is None or row.owner_id != who.user_id:
            raise NotFound("no such webhook")
        return row

    async def list_for(self, who: Principal) -> WebhookList:
        async with self._sessions() as session:
            rows = await session.scalars(
                select(WebhookRow)
                .where(WebhookRow.owner_id == who.user_id)
                .order_by(WebhookRow.created_at, WebhookRow.id)
            )
            return WebhookList(items=[public(r) for r in rows])

    async def create(self, who: Principal, body: WebhookCreate) -> WebhookCreated:
        if body.url is not None:
            self._check_url(body.url)
        async with self._sessions() as session:
            owned = await session.scalar(
                select(func.count())
                .select_from(WebhookRow)
                .where(WebhookRow.owner_id == who.user_id)
            )
            if (owned or 0) >= MAX_ENDPOINTS_PER_USER:
                raise Conflict(
                    f"at most {MAX_ENDPOINTS_PER_USER} notification endpoints per user; "
                    "delete one first",
                    details={"max_endpoints": MAX_ENDPOINTS_PER_USER},
                )
            if body.api_id is not None:
                await self._check_api(session, who, body.api_id)
            row = WebhookRow(
                id=new_id(),
                owner_id=who.user_id,
                api_id=body.api_id,
                name=body.name,
                kind=body.type,
                url=body.url,
                email=body.email,
                format=body.format,
                secret=new_secret(),
                enabled=body.enabled,
                created_at=utcnow(),
            )
            session.add(row)
            try:
                await session.commit()
            except IntegrityError:  # the API was deleted meanwhile
                raise InvalidInput("no such API of yours", details={"field": "api_id"}) from None
            return WebhookCreated(**public(row).model_dump(), secret=row.secret)

    async def update(self, who: Principal, webhook_id: str, body: WebhookUpdate) -> WebhookPublic:
        async with self._sessions() as session:
            row = await self._owned(session, who, webhook_id)
            given = body.model_fields_set
            if "url" in given:
                if row.kind != "webhook" or body.url is None:
                    raise InvalidInput("only a webhook has a url", details={"field": "url"})
                self._check_url(body.url)
                row.url = body.url
            if "email" in given:
                if row.kind != "email" or body.email is None:
                    raise InvalidInput(
                        "only an email endpoint has an email", details={"field": "email"}
                    )
                row.email = body.email
            if "api_id" in given:
                if body.api_id is not None:
                    await self._check_api(session, who, body.api_id)
                row.api_id = body.api_id
            for field in ("name", "format", "enabled"):
                value = getattr(body, field)
                if field in given and value is None:
                    raise InvalidInput(f"{field} cannot be null", details={"field": field})
                if value is not None:
                    setattr(row, field, value)
            try:
                await session.commit()
            except IntegrityError:
                raise InvalidInput("no such API of yours", details={"field": "api_id"}) from None
            return public(row)

    async def delete(self, who: Principal, webhook_id: str) -> None:
        async with self._sessions() as session:
            row = await self._owned(session, who, webhook_id)
            await session.delete(row)
            await session.commit()

    async def rotate(self, who: Principal, webhook_id: str) -> WebhookSecret:
        async with self._sessions() as session:
            row = await self._owned(session, who, webhook_id)
            row.secret = new_secret()
            await session.commit()
            return WebhookSecret(id=row.id, secret=row.secret)

    async def deliveries(self, who: Principal, webhook_id: str, limit: int) -> DeliveryList:
        async with self._sessions() as session:
            await self._owned(session, who, webhook_id)
            rows = await session.scalars(
                select(WebhookDeliveryRow)
                .where(WebhookDeliveryRow.webhook_id == webhook_id)
                .order_by(WebhookDeliveryRow.created_at.desc(), WebhookDeliveryRow.id)
                .limit(limit)
            )
            return DeliveryList(items=[delivery_public(r) for r in rows])

    async def send_test(self, who: Principal, webhook_id: str) -> DeliveryPublic:
        """Deliver a made-up firing transition now (one attempt, logged like the others)."""
        async with self._sessions() as session:
            hook = await self._owned(session, who, webhook_id)
            api_name = "example-api"
            if hook.api_id is not None:
                api = await session.get(ExportedApi, hook.api_id)
                api_name = api.name if api is not None else api_name
            transition = sample_transition(who.user_id, hook.api_id, api_name)
            payload = alert_payload(transition, dashboard_base(self.settings), event="test")
            row = WebhookDeliveryRow(
                id=new_id(),
                webhook_id=hook.id,
                event_id=transition.transition_id,
                event="test",
                payload=payload,
                status="pending",
                attempts=0,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
            session.add(row)
            await session.commit()
        # No database connection is held while the receiver takes its time.
        result = await self.sender.attempt(hook, row.id, payload)
        async with self._sessions() as session:
            saved = await session.get(WebhookDeliveryRow, row.id)
            if saved is None:  # the endpoint was deleted meanwhile
                raise NotFound("no such webhook")
            record(saved, result)
            saved.status = "delivered" if result.ok else "failed"
            await session.commit()
            return delivery_public(saved)

    # --- for the notifier ---

    async def fan_out(self, transition: AlertTransition) -> list[str]:
        """One delivery per enabled endpoint of the owner that matches the API; the ids of those
        still to send (a redelivered transition yields its unsent deliveries again, no new ones)."""
        payload = alert_payload(transition, dashboard_base(self.settings))
        async with self._sessions() as session:
            hooks = list(
                await session.scalars(
                    select(WebhookRow).where(
                        WebhookRow.owner_id == transition.owner_id,
                        WebhookRow.enabled.is_(True),
                        (WebhookRow.api_id.is_(None)) | (WebhookRow.api_id == transition.api_id),
                    )
                )
            )
        pending: list[str] = []
        for hook in hooks:
            async with self._sessions() as session:
                row = WebhookDeliveryRow(
                    id=new_id(),
                    webhook_id=hook.id,
                    event_id=transition.transition_id,
                    event="alert",
                    payload=payload,
                    status="pending",
                    attempts=0,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
                session.add(row)
                try:
                    await session.commit()
                    pending.append(row.id)
                    continue
                except IntegrityError:
                    await session.rollback()
                existing = await session.scalar(
                    select(WebhookDeliveryRow).where(
                        WebhookDeliveryRow.webhook_id == hook.id,
                        WebhookDeliveryRow.event_id == transition.transition_id,
                    )
                )
                if existing is not None and existing.status == "pending" and not existing.attempts:
                    pending.append(existing.id)
        return pending

    async def attempt(self, delivery_id: str, max_attempts: int) -> tuple[str, int] | None:
        """Try one delivery once: its status after (``delivered``, ``retrying`` or ``failed``)
        and its attempts so far; None when there is nothing to do (done, or endpoint deleted)."""
        async with self._sessions() as session:
            row = await session.get(WebhookDeliveryRow, delivery_id)
            if row is None or row.status in ("delivered", "failed"):
                return None
            hook = await session.get(WebhookRow, row.webhook_id)
            if hook is None:
                return None
        # No database connection is held while the receiver takes its time (up to the timeout,
        # for as many deliveries as the consumer's prefetch): the pool stays for the API.
        result = await self.sender.attempt(hook, row.id, row.payload)
        async with self._sessions() as session:
            row = await session.get(WebhookDeliveryRow, delivery_id)
            if row is None:  # the endpoint was deleted meanwhile
                return None
            record(row, result)
            if result.ok:
                row.status = "delivered"
            elif result.error == "SMTP is not configured" or row.attempts >= max_attempts:
                row.status = "failed"
            else:
                row.status = "retrying"
            await session.commit()
            return row.status, row.attempts


def record(row: WebhookDeliveryRow, result: Attempt) -> None:
    row.attempts += 1
    row.response_status = result.response_status
    row.latency_ms = result.latency_ms
    row.last_error = result.error
    row.updated_at = utcnow()


WEBHOOKS = web.AppKey("webhooks", Webhooks)
