"""The registry of exported APIs as ingress holds it: looked up on every request, in memory.

Filled by a snapshot (RPC at start and every resync) and kept current by ``ApiChanged`` control
events; ``IngressRegistryClient`` is the AMQP adapter that feeds it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from dataclasses import dataclass
from datetime import datetime

from ingress.validation import FeatureValidator
from schemas import ApiChanged, ApiChangeKind, ApiRecord, ApiStatus, Task

log = logging.getLogger(__name__)


@dataclass(slots=True)
class ApiEntry:
    """One API compiled for the request path: key digest, validator, limits."""

    record: ApiRecord
    api_id: str
    key_digest: bytes
    key_prefix: str
    active: bool
    model_version: str
    classifier: bool
    rate_limit_per_minute: int
    log_payloads: bool
    validator: FeatureValidator

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
            model_version=record.model_version,
            classifier=record.task is Task.CLASSIFICATION,
            rate_limit_per_minute=record.rate_limit_per_minute or default_rate_limit,
            log_payloads=record.log_payloads,
            validator=FeatureValidator(record.features),
        )

    def key_matches(self, api_key: str) -> bool:
        """Constant-time comparison of the key's SHA-256 with the stored one."""
        digest = hashlib.sha256(api_key.encode("utf-8", "surrogatepass")).digest()
        return hmac.compare_digest(digest, self.key_digest)


class Registry:
    """APIs by id. A snapshot replaces the whole set except entries a newer event changed."""

    def __init__(self, default_rate_limit: int = 100) -> None:
        self._default_rate_limit = default_rate_limit
        self._apis: dict[str, ApiEntry] = {}
        self._changed_at: dict[str, datetime] = {}
        self.ready = False
        self.snapshots = 0
        self.changes = 0

    def get(self, api_id: str) -> ApiEntry | None:
        return self._apis.get(api_id)

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
                apis[record.api_id] = ApiEntry.of(record, self._default_rate_limit)
        for api_id in newer:
            current = self._apis.get(api_id)
            if current is not None and api_id not in apis:
                apis[api_id] = current
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
        else:
            self._apis[change.api_id] = ApiEntry.of(change.api, self._default_rate_limit)
        log.info("registry change applied: %s %s", change.kind.value, change.api_id)
