"""``Idempotency-Key`` on ``POST /api/export/{model_id}`` (as Stripe does it): the same key from the
same user with the same request gets the same answer for 24 h and the API is created once, even for
two requests at the same moment; the same key with another request is refused (409).

The row is inserted in the transaction that creates the API, under a primary key
(user, key digest): of two concurrent requests one commits, the other's commit fails on the key,
rolls back (its API with it) and answers the stored answer. The database never holds the
idempotency key itself (only a SHA-256 of it), and the new API key in the stored answer is sealed
with a keystream derived from the idempotency key, so the table alone reveals no API key; only a
caller presenting the key again (the same user, within 24 h) gets the API key back, and only
while it is still the API's key: once the API is deleted or its key regenerated, a replay is 409.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import orjson
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from management_api.db import ExportedApi, ExportIdempotency, utcnow
from management_api.errors import Conflict, InvalidInput
from management_api.security import hash_api_key
from schemas.resources import ApiCreate, ApiCreated

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
KEY_TTL = timedelta(hours=24)
_KEY_SHAPE = re.compile(r"[\x21-\x7e]{1,255}")
_DIGEST_DOMAIN = b"modelgate/export-idempotency/digest\x00"
_SEAL_DOMAIN = b"modelgate/export-idempotency/seal\x00"
_SALT_BYTES = 16

# Builds the answer from the stored JSON (without key) and the unsealed API key.
RebuildAnswer = Callable[[dict[str, Any], str], ApiCreated]


KEY_REUSED = "IDEMPOTENCY_KEY_REUSED"


def parse_key(values: list[str]) -> str | None:
    """The header's value: absent → None; 1 to 255 visible ASCII characters, else 400."""
    if not values:
        return None
    if len(values) > 1 or not _KEY_SHAPE.fullmatch(values[0]):
        raise InvalidInput(
            f"{HEADER} must be sent once, 1 to 255 visible ASCII characters (a UUID is good)",
            details={"header": HEADER},
        )
    return values[0]


def _keystream(key: str, salt: bytes, length: int) -> bytes:
    secret = _SEAL_DOMAIN + key.encode()
    blocks = b""
    counter = 0
    while len(blocks) < length:
        block = salt + counter.to_bytes(4, "big")
        blocks += hmac.new(secret, block, hashlib.sha256).digest()
        counter += 1
    return blocks[:length]


def seal(secret: str, key: str) -> str:
    """``secret`` (the API key) XORed with an HMAC-SHA256 keystream of the idempotency key."""
    salt = os.urandom(_SALT_BYTES)
    data = secret.encode()
    sealed = bytes(a ^ b for a, b in zip(data, _keystream(key, salt, len(data)), strict=True))
    return (salt + sealed).hex()


def unseal(sealed_hex: str, key: str) -> str:
    raw = bytes.fromhex(sealed_hex)
    salt, sealed = raw[:_SALT_BYTES], raw[_SALT_BYTES:]
    stream = _keystream(key, salt, len(sealed))
    return bytes(a ^ b for a, b in zip(sealed, stream, strict=True)).decode()


@dataclass(frozen=True)
class IdempotentExport:
    """One keyed export request: who sent it, the key, and what was asked."""

    user_id: str
    key: str
    request_digest: str

    @classmethod
    def of(cls, user_id: str, key: str, model_id: str, body: ApiCreate) -> IdempotentExport:
        # The validated body (defaults filled in): `{}` and `{"log_payloads": true}` ask the same.
        request = {"model_id": model_id, "body": body.model_dump(mode="json")}
        digest = hashlib.sha256(orjson.dumps(request, option=orjson.OPT_SORT_KEYS)).hexdigest()
        return cls(user_id=user_id, key=key, request_digest=digest)

    @property
    def key_digest(self) -> str:
        return hashlib.sha256(_DIGEST_DOMAIN + self.key.encode()).hexdigest()

    async def replay(self, session: AsyncSession, rebuild: RebuildAnswer) -> ApiCreated | None:
        """The stored answer to this key (keys over 24 h old are forgotten first), or None."""
        await session.execute(
            delete(ExportIdempotency).where(ExportIdempotency.created_at < utcnow() - KEY_TTL)
        )
        row = await session.scalar(
            select(ExportIdempotency)
            .where(
                ExportIdempotency.user_id == self.user_id,
                ExportIdempotency.key_digest == self.key_digest,
            )
            .execution_options(populate_existing=True)
        )
        if row is None:
            return None
        if row.request_digest != self.request_digest:
            raise Conflict(
                f"this {HEADER} was used in the last 24 h for another request (another model "
                "or other fields); send a new key for a new export",
                details={"header": HEADER, "api_id": row.api_id},
                code=KEY_REUSED,
            )
        api_key = unseal(row.sealed_key, self.key)
        key_hash = await session.scalar(
            select(ExportedApi.key_hash).where(ExportedApi.id == row.api_id)
        )
        # The first answer is only worth repeating while it is true: never a deleted API, never
        # a key that was since regenerated (a dead credential presented as the API's key).
        if key_hash is None:
            raise Conflict(
                f"the API this {HEADER} created has since been deleted; send a new key to "
                "export again",
                details={"header": HEADER, "api_id": row.api_id},
                code=KEY_REUSED,
            )
        if not hmac.compare_digest(key_hash, hash_api_key(api_key)):
            raise Conflict(
                f"the key of the API this {HEADER} created was regenerated since; its first "
                "answer is not replayed (GET the API, or send a new key for a new export)",
                details={"header": HEADER, "api_id": row.api_id},
                code=KEY_REUSED,
            )
        return rebuild(row.response, api_key)

    def row(self, created: ApiCreated) -> ExportIdempotency:
        """What to store beside the new API: the answer without its key, the key sealed."""
        return ExportIdempotency(
            user_id=self.user_id,
            key_digest=self.key_digest,
            request_digest=self.request_digest,
            api_id=created.api.id,
            response=created.model_dump(mode="json", exclude={"api_key", "curl"}),
            sealed_key=seal(created.api_key, self.key),
            created_at=utcnow(),
        )
