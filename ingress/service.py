"""One prediction request, start to answer: key, status, rate limit, validation, batch, event.

The HTTP view only extracts the key, content type and a body reader and writes the ``Answer``;
everything here is callable from a test without a socket. Every call records exactly one event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from ingress.batcher import BatchAnswer, MicroBatcher
from ingress.errors import IngressError, error_body
from ingress.events import EventPublisher
from ingress.ids import new_id
from ingress.metrics import IngressMetrics
from ingress.ratelimit import RateLimiter
from ingress.registry import ApiEntry, Registry
from ingress.settings import IngressSettings
from ingress.validation import InvalidInput
from schemas import ErrorCode

log = logging.getLogger(__name__)

JSON_HEADERS = {"Content-Type": "application/json"}
MAX_API_ID = 64
KNOWN_CODES = frozenset(code.value for code in ErrorCode)
ERROR_STATUS = {
    ErrorCode.MODEL_UNAVAILABLE.value: 503,
    ErrorCode.SERVICE_UNAVAILABLE.value: 503,
}


@dataclass(slots=True)
class Answer:
    """What the view writes back."""

    status: int
    body: bytes
    headers: dict[str, str]


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
    ) -> None:
        self.settings = settings
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
    ) -> Answer:
        started = time.perf_counter()
        request_id = new_id()
        event: dict[str, Any] = {
            "event_id": request_id,
            "ts": time.time(),
            "api_id": api_id[:MAX_API_ID],
            "model_version": "",
            "status_code": 200,
            "error_code": "",
            "ingress_id": self._ingress_id,
        }
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
                event["model_version"] = entry.model_version
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
            event["key_prefix"] = entry.key_prefix
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
            if not _is_json(content_type):
                raise IngressError(
                    415,
                    ErrorCode.UNSUPPORTED_MEDIA_TYPE,
                    "the body must be JSON (Content-Type: application/json)",
                    {"content_type": content_type[:100]},
                )
            body = await read_body()
            event["request_bytes"] = len(body)
            answer = await self._predict(entry, body, request_id, event, headers)
        except IngressError as exc:
            answer = Answer(exc.status, exc.body(), headers)
            event["status_code"] = exc.status
            event["error_code"] = exc.code.value
        except Exception:
            log.exception("request %s failed", request_id)
            answer = Answer(
                500,
                error_body(
                    ErrorCode.INTERNAL_ERROR,
                    "internal error; quote the request id when reporting it",
                    {"request_id": request_id},
                ),
                headers,
            )
            event["status_code"] = 500
            event["error_code"] = ErrorCode.INTERNAL_ERROR.value
        elapsed = time.perf_counter() - started
        event["total_ms"] = elapsed * 1000.0
        event["response_bytes"] = len(answer.body)
        if entry is not None and entry.log_payloads and "key_prefix" in event:
            limit = self._log_bytes
            event["input"] = body[:limit].decode("utf-8", "replace")
            event["output"] = answer.body[:limit].decode("utf-8", "replace")
        self.events.record(event)
        self.metrics.request_done(metric_api, answer.status, elapsed)
        return answer

    async def _predict(
        self,
        entry: ApiEntry,
        body: bytes,
        request_id: str,
        event: dict[str, Any],
        headers: dict[str, str],
    ) -> Answer:
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
        future = self.batcher.submit(
            entry.model_version, validator.feature_names, entry.classifier, rows
        )
        answer: BatchAnswer = await future
        reply = answer.reply
        event["worker_id"] = reply.get("worker_id", "")
        event["worker_rss_mb"] = reply.get("worker_rss_mb", 0.0)
        event["queue_ms"] = reply.get("queue_ms", 0.0)
        event["inference_ms"] = reply.get("inference_ms", 0.0)
        event["batch_size"] = answer.batch_rows
        event["rows"] = answer.count
        event["cpu_ms"] = reply.get("cpu_ms", 0.0) * answer.count / max(1, answer.batch_rows)
        error_code = reply.get("error_code")
        if error_code:
            raise IngressError(
                ERROR_STATUS.get(error_code, 500),
                ErrorCode(error_code) if error_code in KNOWN_CODES else ErrorCode.PREDICTION_FAILED,
                reply.get("error_message") or "the prediction failed",
            )
        results = answer.results
        classifier = entry.classifier
        if not many:
            result = results[0]
            if "error_code" in result:
                raise IngressError(
                    500,
                    ErrorCode.PREDICTION_FAILED,
                    "the model could not predict this input",
                    {"reason": result.get("error_message") or ""},
                )
            out: dict[str, Any] = {"prediction": result["prediction"]}
            if classifier:
                out["probabilities"] = result.get("probabilities")
            event["prediction"] = str(result["prediction"])[:200]
        else:
            predictions: list[dict[str, Any]] = []
            failed = 0
            for result in results:
                if "error_code" in result:
                    failed += 1
                    predictions.append(
                        {
                            "error": {
                                "code": ErrorCode.PREDICTION_FAILED.value,
                                "message": result.get("error_message") or "",
                            }
                        }
                    )
                elif classifier:
                    predictions.append(
                        {
                            "prediction": result["prediction"],
                            "probabilities": result.get("probabilities"),
                        }
                    )
                else:
                    predictions.append({"prediction": result["prediction"]})
            if failed == len(results):
                raise IngressError(
                    500,
                    ErrorCode.PREDICTION_FAILED,
                    "the model could not predict any instance",
                    {"reason": results[0].get("error_message") or ""},
                )
            out = {"predictions": predictions}
            first = results[0].get("prediction")
            event["prediction"] = str(first)[:200] if first is not None else ""
        out["request_id"] = request_id
        out["model_version"] = entry.model_version
        return Answer(200, orjson.dumps(out), headers)
