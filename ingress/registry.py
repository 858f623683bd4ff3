"""The registry of exported APIs as ingress holds it: looked up on every request, in memory.

Filled by a snapshot (RPC at start and every resync) and kept current by ``ApiChanged`` control
events; ``IngressRegistryClient`` is the AMQP adapter that feeds it.

Warm switch: when a change (or a snapshot) gives an API another model version, the registry keeps
answering that API with the version it served, and the features that go with it, until the new
version is warm: every predictor consuming requests (``predictors_online``) has answered for it
and at least one reported it loaded (``version_ready``, fed by ``VersionReady`` events), so no
batch lands on a predictor still loading it; or until ``warm_switch_timeout_s`` passes (then it
switches anyway and logs why).
Everything else the change carries (key, status, limits) applies at once. A new API has no
version to keep: it serves at once. Snapshots go through the same rule, so one taken before the
deploy cannot undo a pending switch and one taken after cannot hurry it.
The same holds for a canary or shadow version (``ApiRecord.traffic``): a split to a version not
warm yet keeps the split the API had (often none) until it is; a version the API already sent
traffic to (promoting its canary) needs no report.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from ingress.validation import FeatureValidator
from schemas import ApiChanged, ApiChangeKind, ApiRecord, ApiStatus, Task, TrafficSplit

log = logging.getLogger(__name__)

VERSION_FIELDS = (
    "version_key",
    "version_number",
    "model_id",
    "model_name",
    "task",
    "features",
    "classes",
    "image",
)
"""What an API record takes from its model version: held back together while a switch waits."""
MAX_READY_REMEMBERED = 1024


def versions_of(record: ApiRecord) -> frozenset[str]:
    """The model versions a record sends traffic to: the serving one and its canary or shadow."""
    if record.traffic is None:
        return frozenset((record.version_key,))
    return frozenset((record.version_key, record.traffic.version_key))


@dataclass(slots=True)
class ApiEntry:
    """One API compiled for the request path: key digest, validator, limits."""

    record: ApiRecord
    api_id: str
    key_digest: bytes
    key_prefix: str
    active: bool
    version_key: str
    """Model store key of the deployed version."""
    classifier: bool
    rate_limit_per_minute: int
    log_payloads: bool
    validator: FeatureValidator
    traffic: TrafficSplit | None = None
    """A canary or shadow version beside ``version_key`` (never ``version_key`` itself)."""

    @classmethod
    def of(cls, record: ApiRecord, default_rate_limit: int) -> ApiEntry:
        try:
            digest = bytes.fromhex(record.key_hash)
        except ValueError:
            log.error("API %s has a malformed key hash; no key will match it", record.api_id)
            digest = b""
        return cls(
            record=record,
            api_id=record.api_id,
            key_digest=digest,
            key_prefix=record.key_prefix,
            active=record.status is ApiStatus.ACTIVE,
            version_key=record.version_key,
            classifier=record.task is Task.CLASSIFICATION,
            rate_limit_per_minute=record.rate_limit_per_minute or default_rate_limit,
            log_payloads=record.log_payloads,
            validator=FeatureValidator(record.features),
            traffic=record.traffic
            if record.traffic is not None and record.traffic.version_key != record.version_key
            else None,
        )

    def key_matches(self, api_key: str) -> bool:
        """Constant-time comparison of the key's SHA-256 with the stored one."""
        digest = hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, self.key_digest)


@dataclass(slots=True)
class PendingSwitch:
    """An API given a new version that is not warm yet: ``served`` keeps answering until then."""

    target: ApiRecord
    """The newest record of the API (with the version it switches to)."""
    served: ApiRecord
    """The record whose version (and features), and traffic split, answer until the switch."""
    deadline: float
    """Clock time after which it switches without a ready report."""
    waiting_for: frozenset[str]
    """The target's versions that were not warm (its serving one, its canary or shadow)."""


class Registry:
    """APIs by id. A snapshot replaces the whole set except entries a newer event changed."""

    def __init__(
        self,
        default_rate_limit: int = 100,
        warm_switch_timeout_s: float = 0.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._default_rate_limit = default_rate_limit
        self._apis: dict[str, ApiEntry] = {}
        self._changed_at: dict[str, datetime] = {}
        self._warm_timeout_s = warm_switch_timeout_s
        self._clock = clock
        self._pending: dict[str, PendingSwitch] = {}
        self._reports: dict[str, dict[str, tuple[bool, float]]] = {}
        """Per version, each predictor's last report: loaded or not, and when."""
        self.predictors_online = 0
        """Predictors consuming requests now (kept current by the broker link)."""
        self.ready = False
        self.snapshots = 0
        self.changes = 0
        self.switches_on_ready = 0
        self.switches_timed_out = 0

    def get(self, api_id: str) -> ApiEntry | None:
        if self._pending:  # only while a deploy waits: the hot path pays one dict check
            pending = self._pending.get(api_id)
            if pending is not None and self._clock() >= pending.deadline:
                self.switches_timed_out += 1
                log.warning(
                    "API %s: no predictor reported version %s ready within %gs; switching anyway",
                    api_id,
                    ", ".join(sorted(pending.waiting_for)),
                    self._warm_timeout_s,
                )
                self._switch(api_id)
        return self._apis.get(api_id)

    @property
    def pending_switches(self) -> int:
        return len(self._pending)

    def version_ready(self, version_key: str, predictor_id: str = "", ok: bool = True) -> list[str]:
        """A predictor's report on ``version_key``; once the version is warm, switch the APIs
        waiting for it (their ids are returned). Reports are remembered a while, in case they
        overtook the deploy event."""
        now = self._clock()
        self._reports.setdefault(version_key, {})[predictor_id] = (ok, now)
        if len(self._reports) > MAX_READY_REMEMBERED:
            latest = sorted(
                self._reports, key=lambda v: max(at for _, at in self._reports[v].values())
            )
            for stale in latest[: -MAX_READY_REMEMBERED // 2]:
                del self._reports[stale]
        if not self._is_warm(version_key):
            return []
        waiting = [
            api_id
            for api_id, pending in self._pending.items()
            if version_key in pending.waiting_for
            and all(self._is_warm(v) for v in pending.waiting_for if v != version_key)
        ]
        for api_id in waiting:
            self.switches_on_ready += 1
            log.info("API %s: version %s reported ready; switching", api_id, version_key)
            self._switch(api_id)
        return waiting

    def _switch(self, api_id: str) -> None:
        pending = self._pending.pop(api_id)
        self._apis[api_id] = ApiEntry.of(pending.target, self._default_rate_limit)

    def _is_warm(self, version_key: str) -> bool:
        """Some predictor loaded it, and every one online answered (recently) for it."""
        now = self._clock()
        recent = [
            ok
            for ok, at in self._reports.get(version_key, {}).values()
            if now - at <= self._warm_timeout_s
        ]
        return any(recent) and len(recent) >= max(1, self.predictors_online)

    def _admit(self, record: ApiRecord, current: ApiEntry | None) -> ApiEntry:
        """The entry that serves ``record`` now: itself, or, while one of its versions is not
        known warm, itself with the version (and features) and the traffic split the API served
        before in place of the cold ones (``PendingSwitch``)."""
        pending = self._pending.pop(record.api_id, None)
        served = pending.served if pending is not None else current.record if current else None
        if served is None or self._warm_timeout_s <= 0:
            return ApiEntry.of(record, self._default_rate_limit)
        cold = frozenset(
            v for v in versions_of(record) - versions_of(served) if not self._is_warm(v)
        )
        if not cold:
            return ApiEntry.of(record, self._default_rate_limit)
        if pending is not None and cold <= pending.waiting_for:
            deadline = pending.deadline
        else:
            deadline = self._clock() + self._warm_timeout_s
            log.info(
                "API %s: version %s deployed; %s answers until a predictor reports it ready",
                record.api_id,
                ", ".join(sorted(cold)),
                served.version_key,
            )
        self._pending[record.api_id] = PendingSwitch(record, served, deadline, cold)
        held: dict[str, object] = {}
        if record.version_key in cold:
            held.update({name: getattr(served, name) for name in VERSION_FIELDS})
        if record.traffic is not None and record.traffic.version_key in cold:
            held["traffic"] = served.traffic
        return ApiEntry.of(record.model_copy(update=held), self._default_rate_limit)

    def __len__(self) -> int:
        return len(self._apis)

    def apply_snapshot(
        self, records: list[ApiRecord], generated_at: datetime | None = None
    ) -> None:
        """Replace the set with a snapshot, except what a control event changed after it was taken.

        A snapshot answered before a change but applied after it must not undo the change: a
        created API must not vanish, a deleted one must not come back, a rotated key must not
        revert. Changes newer than the snapshot (by the management API's own clock) win.
        """
        newer = {
            api_id: at
            for api_id, at in self._changed_at.items()
            if generated_at is None or at > generated_at
        }
        apis: dict[str, ApiEntry] = {}
        for record in records:
            current = self._apis.get(record.api_id)
            if record.api_id in newer:
                if current is not None:
                    apis[record.api_id] = current
                continue
            if current is not None and current.record.updated_at > record.updated_at:
                apis[record.api_id] = current
            else:
                apis[record.api_id] = self._admit(record, current)
        for api_id in newer:
            current = self._apis.get(api_id)
            if current is not None and api_id not in apis:
                apis[api_id] = current
        self._pending = {a: p for a, p in self._pending.items() if a in apis}
        self._apis = apis
        self._changed_at = newer
        self.ready = True
        self.snapshots += 1
        log.info("registry snapshot applied: %d APIs", len(apis))

    def apply_change(self, change: ApiChanged) -> None:
        self.changes += 1
        self._changed_at[change.api_id] = change.at
        if change.kind is ApiChangeKind.DELETED or change.api is None:
            self._apis.pop(change.api_id, None)
            self._pending.pop(change.api_id, None)
        else:
            current = self._apis.get(change.api_id)
            self._apis[change.api_id] = self._admit(change.api, current)
        log.info("registry change applied: %s %s", change.kind.value, change.api_id)
