"""Alerting contracts (issue 12): rules, their states, and the transitions the evaluator publishes.

The evaluator (management API, one process at a time holds the lease) evaluates every enabled rule
every ``evaluation_interval_s`` from the rollups; each state change is stored in the alert history
and published as an ``AlertTransition`` on the namespace's ``events`` exchange with routing key
``ALERT_TRANSITION_KEY``; the notifier consumes them from its own durable queue and delivers them
to the webhook endpoints (and e-mail) of the API's owner.

States follow Prometheus: a rule whose condition holds becomes ``pending``; if it still holds after
``for_s`` seconds it is ``firing``; when the condition ends it is ``resolved`` (then ``ok`` again
at the next evaluation, without a transition). A pending rule whose condition ends goes back to
``ok`` silently (no notification).
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator

ALERT_TRANSITION_KEY = "alert.transition"
"""Routing key of ``AlertTransition`` messages on the ``events`` exchange."""


class AlertRuleKind(StrEnum):
    ERROR_RATE_5XX = "error_rate_5xx"
    """Share of the window's requests answered 5xx (0..1) above the threshold."""
    ERROR_RATE_4XX = "error_rate_4xx"
    """Share of the window's requests answered 4xx (0..1), apart from 5xx, above the threshold."""
    P95_MS = "p95_ms"
    P99_MS = "p99_ms"
    TRAFFIC_DROP = "traffic_drop"
    """The window's requests fell below ``threshold`` (0..1) times the previous window's."""
    NO_TRAFFIC = "no_traffic"
    """No request at all in the window (threshold unused, 0)."""
    RATE_LIMIT_SATURATION = "rate_limit_saturation"
    """Share of the window's requests refused with 429 (0..1) above the threshold."""
    CPU_PERCENT = "cpu_percent"
    MEMORY_MB = "memory_mb"
    DRIFT_PSI = "drift_psi"
    """The largest PSI over the API's features (live inputs of the window against the served
    version's reference profile) above the threshold (0.25: drift, 0.1: warning); at least
    ``min_requests`` logged rows in the window."""
    ACCURACY_DROP = "accuracy_drop"
    """Live accuracy from feedback (0..1) below the threshold (classification), or live RMSE
    above it (regression), over the requests whose feedback came in the window; at least
    ``min_requests`` of them."""


class AlertState(StrEnum):
    OK = "ok"
    PENDING = "pending"
    FIRING = "firing"
    RESOLVED = "resolved"


class AlertRule(BaseModel):
    """One rule of one API."""

    model_config = ConfigDict(extra="forbid")

    id: str
    api_id: str
    kind: AlertRuleKind
    threshold: float = Field(ge=0)
    window_s: int = Field(300, ge=60, le=86_400, description="evaluated over this trailing window")
    for_s: int = Field(0, ge=0, le=86_400, description="condition must hold this long to fire")
    min_requests: int = Field(
        20, ge=0, description="rate and latency rules need this many requests in the window"
    )
    enabled: bool = True


class AlertTransition(BaseModel):
    """A rule's state change: one row of the alert history and one notification."""

    model_config = ConfigDict(extra="ignore")

    transition_id: str
    """Unique per transition: notifications are delivered at least once, receivers dedupe on it."""
    rule_id: str
    api_id: str
    api_name: str
    owner_id: str
    kind: AlertRuleKind
    from_state: AlertState
    to_state: AlertState
    value: float | None = None
    """The rule's figure at the evaluation that changed the state (None: no data)."""
    threshold: float
    window_s: int
    for_s: int
    at: datetime
    silenced: bool = False
    """The rule was silenced at that moment: stored in the history, not notified (the engine
    does not publish silenced transitions)."""


# --- routes (management API) -------------------------------------------------------------------

RATE_KINDS = frozenset(
    {
        AlertRuleKind.ERROR_RATE_5XX,
        AlertRuleKind.ERROR_RATE_4XX,
        AlertRuleKind.RATE_LIMIT_SATURATION,
        AlertRuleKind.TRAFFIC_DROP,
    }
)
"""Kinds whose threshold is a share (0..1)."""

MAX_RULES_PER_API = 50


class AlertRuleSpec(BaseModel):
    """One rule as ``PUT /api/exports/{id}/alert-rules`` takes it; ``id`` of an existing rule of
    the API keeps that rule (and its state), no ``id`` makes a new one."""

    model_config = ConfigDict(extra="forbid")

    id: str | None = Field(None, min_length=1, max_length=32, pattern=r"^[0-9a-f]+$")
    kind: AlertRuleKind
    threshold: float = Field(ge=0, le=1e12, allow_inf_nan=False)
    window_s: int = Field(300, ge=60, le=86_400, strict=True)
    for_s: int = Field(0, ge=0, le=86_400, strict=True)
    min_requests: int = Field(20, ge=0, le=1_000_000_000, strict=True)
    enabled: bool = Field(True, strict=True)

    @model_validator(mode="after")
    def _share(self) -> AlertRuleSpec:
        if self.kind in RATE_KINDS and self.threshold > 1:
            raise ValueError(f"the threshold of a {self.kind.value} rule is a share (0..1)")
        return self


class AlertRulesUpdate(BaseModel):
    """The whole list of an API's rules (rules of the API left out are deleted)."""

    model_config = ConfigDict(extra="forbid")

    rules: list[AlertRuleSpec] = Field(max_length=MAX_RULES_PER_API)


class AlertRuleList(BaseModel):
    items: list[AlertRule]


class AlertRuleStatus(BaseModel):
    """A rule with its current state (``GET /api/alerts/active``, ack and silence answers)."""

    rule: AlertRule
    api_name: str
    state: AlertState
    value: float | None = None
    since: datetime | None = Field(None, description="when the rule entered its current state")
    acked_by: str | None = Field(None, description="username that acknowledged this firing")
    acked_at: datetime | None = None
    silenced_until: datetime | None = None


class ActiveAlertList(BaseModel):
    items: list[AlertRuleStatus]


class AlertHistoryQuery(BaseModel):
    """Filters of ``GET /api/alerts`` (newest first)."""

    model_config = ConfigDict(extra="forbid")

    api_id: str | None = Field(None, min_length=1, max_length=32)
    state: AlertState | None = Field(None, description="the state transitioned to")
    since: datetime | None = None
    until: datetime | None = None
    limit: int = Field(100, ge=1, le=1000)


class AlertHistory(BaseModel):
    items: list[AlertTransition]


class SilenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: int = Field(ge=60, le=30 * 86_400, strict=True)
