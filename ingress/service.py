"""One prediction request, start to answer: key, status, rate limit, validation, batch, event.

The HTTP view only extracts the key, content type and a body reader and writes the ``Answer``;
everything here is callable from a test without a socket. Every call records exactly one event,
plus one of its own for the shadow version when the API mirrors the request (``ingress.traffic``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ingress.batcher import BatchAnswer, MicroBatcher
from ingress.errors import IngressError, error_body
from ingress.events import EventPublisher
from ingress.ids import new_id
from ingress.images import ImageError, features_body, is_image_request
from ingress.metrics import IngressMetrics
from ingress.ratelimit import RateLimiter
from ingress.registry import ApiEntry, Registry
from ingress.settings import IngressSettings
from ingress.tracing import current_trace
from ingress.traffic import Route, ShadowCalls, TrafficRouter
from ingress.validation import InvalidInput
from schemas import ErrorCode
from schemas.messages import BatchTrace, RequestEvent, utc_from_epoch
from schemas.trace import RequestTrace, new_span_id

log = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_API_ID = 64
KNOWN_CODES = frozenset(code.value for code in ErrorCode)
ERROR_STATUS = {
    ErrorCode.MODEL_UNAVAILABLE.value: 503,
    ErrorCode.SERVICE_UNAVAILABLE.value: 503,
}
NOT_MIRRORED = frozenset((503, 504))
"""A request the serving version could not answer for want of capacity is not mirrored too."""


@dataclass(slots=True)
class Answer:
    """What the view writes back."""

    status: int
    body: bytes
    headers: dict[str, str]


class Codec(Protocol):
    """Another wire format for the same request path (``ingress.oip``): how it accepts a body,
    reads its rows, writes the answer and the errors; the default is this module's JSON."""

    def accepts(self, content_type: str) -> bool: ...

    async def prepare(self, entry: ApiEntry, body: bytes) -> bytes: ...

    def rows(self, entry: ApiEntry, body: bytes) -> list[list[Any]]: ...

    def answer(
        self, entry: ApiEntry, out: dict[str, Any], request_id: str, version_key: str
    ) -> bytes: ...

    def error(self, exc: IngressError) -> tuple[int, bytes]: ...


def _version_number(entry: ApiEntry | None, version_key: str) -> str:
    """The number (``"1"``, ``"2"``...) of the version of ``entry`` a request went to, for the
    metrics' ``version`` label; empty before a version was chosen."""
    if entry is None or not version_key:
        return ""
    if version_key == entry.version_key:
        return str(entry.record.version_number)
    if entry.traffic is not None and version_key == entry.traffic.version_key:
        return str(entry.traffic.version_number)
    return ""


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    if media == "application/json":
        return True
    return media.startswith("application/") and media.endswith("+json")


class PredictionService:
    """Answers ``POST /api/predict/{api_id}`` and records its ``RequestEvent``."""

    def __init__(
        self,
        settings: IngressSettings,
        registry: Registry,
        rate_limiter: RateLimiter,
        batcher: MicroBatcher,
        events: EventPublisher,
        metrics: IngressMetrics,
        router: TrafficRouter | None = None,
        shadows: ShadowCalls | None = None,
    ) -> None:
        self.settings = settings
        self.router = router or TrafficRouter()
        self.shadows = shadows or ShadowCalls(settings.ingress_shadow_max_inflight)
        self.registry = registry
        self.rate_limiter = rate_limiter
        self.batcher = batcher
        self.events = events
        self.metrics = metrics
        self._ingress_id = settings.ingress_id
        self._log_bytes = settings.ingress_payload_log_bytes
        self._max_instances = settings.ingress_max_instances

    async def predict(
        self,
        api_id: str,
        api_key: str | None,
        content_type: str,
        read_body: Callable[[], Awaitable[bytes]],
        codec: Codec | None = None,
        trace: RequestTrace | None = None,
    ) -> Answer:
        """The answer to one request; ``trace`` defaults to the request's (``ingress.tracing``)."""
        started = time.perf_counter()
        request_id = new_id()
        if trace is None:
            trace = current_trace()
        event = RequestEvent(
            event_id=request_id,
            ts=utc_from_epoch(time.time()),
            api_id=api_id[:MAX_API_ID],
            status_code=200,
            ingress_id=self._ingress_id,
            # Until the key matches the API's, anyone may have sent it: kept out of its figures.
            authenticated=False,
            trace_id=trace.trace_id,
        )
        entry: ApiEntry | None = None
        body = b""
        headers: dict[str, str] = JSON_HEADERS
        metric_api = "unknown"
        try:
            if not self.registry.ready:
                raise IngressError(
                    503,
                    ErrorCode.REGISTRY_NOT_READY,
                    "ingress is starting and does not know the APIs yet; try again shortly",
                )
            entry = self.registry.get(api_id)
            if entry is not None:
                metric_api = entry.api_id
                event.version_key = entry.version_key
            if not api_key:
                raise IngressError(
                    401,
                    ErrorCode.MISSING_API_KEY,
                    "an API key is required in the X-API-Key header (or Authorization: Bearer)",
                )
            if entry is None:
                raise IngressError(404, ErrorCode.API_NOT_FOUND, f"no API {api_id[:MAX_API_ID]!r}")
            if not entry.key_matches(api_key):
                raise IngressError(403, ErrorCode.INVALID_API_KEY, "the API key is not valid")
            event.key_prefix = entry.key_prefix
            event.authenticated = True
            if not entry.active:
                raise IngressError(403, ErrorCode.API_INACTIVE, "this API is inactive")
            decision = self.rate_limiter.take(entry.api_id, entry.rate_limit_per_minute)
            headers = decision.headers()  # a fresh dict: add to it rather than copy it
            headers.update(JSON_HEADERS)
            if not decision.allowed:
                raise IngressError(
                    429,
                    ErrorCode.RATE_LIMITED,
                    f"rate limit of {decision.limit} requests per minute exceeded",
                    {"limit_per_minute": decision.limit, "retry_after_s": decision.retry_after_s},
                )
            image_body = codec is None and is_image_request(content_type)
            if not image_body and not (
                _is_json(content_type) if codec is None else codec.accepts(content_type)
            ):
                raise IngressError(
                    415,
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON (Content-Type: application/json), or an image "
                    "(multipart/form-data, image/png, image/jpeg) for an API that takes images",
                    {"content_type": content_type[:100]},
                )
            body = await read_body()
            event.request_bytes = len(body)
            if codec is not None:
                body = await codec.prepare(entry, body)
            elif image_body or b'"image"' in body:
                # An image becomes the JSON of its pixel features: checked, batched and
                # recorded (never the image bytes) as any request of features.
                body = await self._image_features(entry, content_type, body)
            answer = await self._predict(entry, body, request_id, event, headers, codec, trace)
        except IngressError as exc:
            if exc.headers:
                headers = {**headers, **exc.headers}
                if exc.code is ErrorCode.OVERLOADED:
                    self.metrics.request_shed(metric_api, exc.details.get("reason", ""))
            status, error = (exc.status, exc.body()) if codec is None else codec.error(exc)
            answer = Answer(status, error, headers)
            event.status_code = status
            event.error_code = exc.code.value
        except Exception:
            log.exception("request %s (trace %s) failed", request_id, trace.trace_id)
            internal = IngressError(
                500,
                ErrorCode.INTERNAL_ERROR,
                "internal error; quote the request id when reporting it",
                {"request_id": request_id},
            )
            answer = Answer(
                500, internal.body() if codec is None else codec.error(internal)[1], headers
            )
            event.status_code = 500
            event.error_code = ErrorCode.INTERNAL_ERROR.value
        elapsed = time.perf_counter() - started
        event.total_ms = elapsed * 1000.0
        event.response_bytes = len(answer.body)
        if entry is not None and entry.log_payloads and event.authenticated:
            limit = self._log_bytes
            event.input = body[:limit].decode("utf-8", "replace")
            event.output = answer.body[:limit].decode("utf-8", "replace")
        self.events.record(event)
        self.metrics.request_done(
            metric_api, answer.status, elapsed, _version_number(entry, event.version_key)
        )
        return answer

    async def _predict(
        self,
        entry: ApiEntry,
        body: bytes,
        request_id: str,
        event: RequestEvent,
        headers: dict[str, str],
        codec: Codec | None = None,
        trace: RequestTrace | None = None,
    ) -> Answer:
        route = self.router.route(entry)
        trace = trace or current_trace()
        event.version_key = route.version_key
        if route.canary:
            self.metrics.canary_routed(entry.api_id)
        rows, many = self._rows(entry, body) if codec is None else (codec.rows(entry, body), True)
        try:
            out = await self._run(
                entry,
                route.version_key,
                rows,
                many,
                event,
                BatchTrace(request_id, trace.traceparent(), len(rows)),
            )
        except IngressError as exc:
            if route.shadow_key is not None and exc.status not in NOT_MIRRORED:
                self._mirror(entry, route, rows, many, request_id, body, trace)
            raise
        if route.shadow_key is not None:
            self._mirror(entry, route, rows, many, request_id, body, trace)
        if codec is not None:
            return Answer(200, codec.answer(entry, out, request_id, route.version_key), headers)
        out["request_id"] = request_id
        out["model_version"] = route.version_key
        return Answer(200, orjson.dumps(out), headers)

    async def _image_features(self, entry: ApiEntry, content_type: str, body: bytes) -> bytes:
        """The body of features an image request stands for (else ``body`` as it is)."""
        try:
            features = await features_body(
                entry.record.image,
                entry.validator.feature_names,
                content_type,
                body,
                max_images=self._max_instances,
            )
        except ImageError as exc:
            raise IngressError(400, ErrorCode.INVALID_IMAGE, exc.message, exc.details) from None
        return body if features is None else features

    def _rows(self, entry: ApiEntry, body: bytes) -> tuple[list[list[Any]], bool]:
        """The request's rows, validated against the serving version's features, and whether it
        sent ``instances`` (many rows) rather than one object."""
        try:
            payload = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise IngressError(
                400, ErrorCode.INVALID_JSON, "the body is not valid JSON", {"reason": str(exc)}
            ) from None
        validator = entry.validator
        many = (
            isinstance(payload, dict)
            and "instances" in payload
            and "instances" not in validator.feature_names
        )
        try:
            if many:
                instances = payload["instances"]
                if not isinstance(instances, list) or not instances:
                    raise InvalidInput(
                        '"instances" must be a non-empty list of feature objects',
                        {"instances": "expected a non-empty array"},
                    )
                if len(instances) > self._max_instances:
                    raise InvalidInput(
                        f"at most {self._max_instances} instances per request",
                        {"max_instances": self._max_instances, "instances": len(instances)},
                    )
                rows = validator.rows(instances)
            else:
                rows = [validator.row(payload)]
        except InvalidInput as exc:
            raise IngressError(400, ErrorCode.INVALID_INPUT, exc.message, exc.details) from None
        return rows, many

    async def _run(
        self,
        entry: ApiEntry,
        version_key: str,
        rows: list[list[Any]],
        many: bool,
        event: RequestEvent,
        batch_trace: BatchTrace | None = None,
    ) -> dict[str, Any]:
        """``rows`` predicted by ``version_key``: the answer's body (without ids) and ``event``'s
        measurements; an ``IngressError`` when it cannot answer."""
        future = self.batcher.submit(
            version_key, entry.validator.feature_names, entry.classifier, rows, batch_trace
        )
        answer: BatchAnswer = await future
        reply = answer.reply
        event.worker_id = reply.worker_id
        event.worker_rss_mb = reply.worker_rss_mb
        event.queue_ms = reply.queue_ms
        event.inference_ms = reply.inference_ms
        event.batch_size = answer.batch_rows
        event.rows = answer.count
        event.cpu_ms = reply.cpu_ms * answer.count / max(1, answer.batch_rows)
        error_code = reply.error_code
        if error_code:
            raise IngressError(
                ERROR_STATUS.get(error_code, 500),
                ErrorCode(error_code) if error_code in KNOWN_CODES else ErrorCode.PREDICTION_FAILED,
                reply.error_message or "the prediction failed",
            )
        results = answer.results
        classifier = entry.classifier
        if not many:
            result = results[0]
            if result.error_code is not None:
                raise IngressError(
                    500,
                    ErrorCode.PREDICTION_FAILED,
                    "the model could not predict this input",
                    {"reason": result.error_message or ""},
                )
            out: dict[str, Any] = {"prediction": result.prediction}
            if classifier:
                out["probabilities"] = result.probabilities
            event.prediction = str(result.prediction)[:200]
        else:
            predictions: list[dict[str, Any]] = []
            failed = 0
            for result in results:
                if result.error_code is not None:
                    failed += 1
                    predictions.append(
                        {
                            "error": {
                                "code": ErrorCode.PREDICTION_FAILED.value,
                                "message": result.error_message or "",
                            }
                        }
                    )
                elif classifier:
                    predictions.append(
                        {"prediction": result.prediction, "probabilities": result.probabilities}
                    )
                else:
                    predictions.append({"prediction": result.prediction})
            if failed == len(results):
                raise IngressError(
                    500,
                    ErrorCode.PREDICTION_FAILED,
                    "the model could not predict any instance",
                    {"reason": results[0].error_message or ""},
                )
            out = {"predictions": predictions}
            first = results[0].prediction
            event.prediction = str(first)[:200] if first is not None else ""
        return out

    def _mirror(
        self,
        entry: ApiEntry,
        route: Route,
        rows: list[list[Any]],
        many: bool,
        request_id: str,
        body: bytes,
        trace: RequestTrace,
    ) -> None:
        """Send the request to the shadow version in the background (or drop it at the cap)."""
        shadow_key = route.shadow_key
        assert shadow_key is not None

        if self.shadows.start(
            lambda: self._shadow(entry, shadow_key, rows, many, request_id, body, trace)
        ):
            self.metrics.shadow_call(entry.api_id, "sent")
        else:
            self.metrics.shadow_call(entry.api_id, "dropped")

    async def _shadow(
        self,
        entry: ApiEntry,
        version_key: str,
        rows: list[list[Any]],
        many: bool,
        primary_id: str,
        body: bytes,
        trace: RequestTrace,
    ) -> None:
        """One shadow call: its answer or failure becomes an event of its own, linked to the
        request it mirrors (same trace, a span of its own); nothing of it reaches the client or
        the API's figures."""
        started = time.perf_counter()
        # A span of its own in the request's trace: the predictor's log tells the two calls apart.
        span = RequestTrace(trace.trace_id, new_span_id(), trace.span_id, trace.flags)
        event = RequestEvent(
            event_id=new_id(),
            ts=utc_from_epoch(time.time()),
            api_id=entry.api_id,
            version_key=version_key,
            status_code=200,
            ingress_id=self._ingress_id,
            key_prefix=entry.key_prefix,
            authenticated=True,
            request_bytes=len(body),
            shadow=True,
            shadow_of=primary_id,
            trace_id=trace.trace_id,
        )
        try:
            out = await self._run(
                entry,
                version_key,
                rows,
                many,
                event,
                BatchTrace(event.event_id, span.traceparent(), len(rows)),
            )
            out["request_id"] = event.event_id
            out["model_version"] = version_key
            output = orjson.dumps(out)
        except IngressError as exc:
            event.status_code = exc.status
            event.error_code = exc.code.value
            output = exc.body()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("shadow call %s (of %s) failed", event.event_id, primary_id)
            event.status_code = 500
            event.error_code = ErrorCode.INTERNAL_ERROR.value
            output = error_body(ErrorCode.INTERNAL_ERROR, "internal error")
        event.total_ms = (time.perf_counter() - started) * 1000.0
        event.response_bytes = len(output)
        if entry.log_payloads:
            limit = self._log_bytes
            event.input = body[:limit].decode("utf-8", "replace")
            event.output = output[:limit].decode("utf-8", "replace")
        self.events.record(event)
        if event.status_code != 200:
            self.metrics.shadow_call(entry.api_id, "failed")
