"""Passwords (argon2), access tokens (JWT, HS256) and API keys (shown once, stored as SHA-256)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import secrets
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from infra.private_files import create_private_file, restrict_existing
from management_api.errors import ServiceUnavailable, Unauthorized

log = logging.getLogger(__name__)
T = TypeVar("T")

API_KEY_PREFIX = "mg_"
DISPLAY_PREFIX_CHARS = 10
JWT_ALGORITHM = "HS256"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    """Argon2id hash (~64 MiB and tens of ms of CPU): call it through ``PasswordHashing`` on a
    server, never on the event loop."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def default_hash_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1)


class PasswordHashing:
    """Argon2 off the event loop, a bounded number at once.

    At most ``workers`` hashes run (each holds argon2's memory for its duration), in their own
    threads (argon2-cffi releases the GIL), so the loop keeps serving every other route. At most
    ``max_waiting`` more wait for a turn; beyond that a caller is refused at once with 503 and
    ``Retry-After`` instead of queueing without bound.
    """

    def __init__(self, workers: int | None = None, max_waiting: int = 64) -> None:
        self.workers = workers or default_hash_workers()
        self.max_waiting = max_waiting
        self._executor = ThreadPoolExecutor(self.workers, thread_name_prefix="password-hash")
        self._slots = asyncio.Semaphore(self.workers)
        self._waiting = 0

    @property
    def waiting(self) -> int:
        """Callers waiting for a worker right now."""
        return self._waiting

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password)

    async def verify(self, password_hash: str, password: str) -> bool:
        return await self._run(verify_password, password_hash, password)

    async def _run(self, function: Callable[..., T], *args: str) -> T:
        if self._slots.locked() and self._waiting >= self.max_waiting:
            raise ServiceUnavailable(
                "too many password checks at once; retry in a moment",
                details={"retry_after_s": 1},
                headers={"Retry-After": "1"},
            )
        self._waiting += 1
        try:
            await self._slots.acquire()
        finally:
            self._waiting -= 1
        loop = asyncio.get_running_loop()
        try:
            job = self._executor.submit(function, *args)
        except BaseException:
            self._slots.release()
            raise

        def finished(_: Future[T]) -> None:
            # The slot frees when the thread is done, not when an awaiting request goes away:
            # a cancelled caller must not let more hashes run than there are workers.
            with suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._slots.release)

        job.add_done_callback(finished)
        return await asyncio.wrap_future(job)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def generate_password() -> str:
    return secrets.token_urlsafe(15)


@dataclass(frozen=True)
class NewApiKey:
    """A freshly generated key: the full value (shown once), its hash and its display prefix."""

    key: str
    key_hash: str
    prefix: str


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate_api_key() -> NewApiKey:
    key = API_KEY_PREFIX + secrets.token_urlsafe(48)
    return NewApiKey(key=key, key_hash=hash_api_key(key), prefix=key[:DISPLAY_PREFIX_CHARS])


def load_or_create_secret(configured: str | None, data_dir: Path) -> str:
    """The configured JWT secret, else one generated once and kept (mode 0600) in the data dir."""
    if configured:
        return configured
    path = data_dir / "jwt-secret"
    if not path.is_file():
        create_private_file(path, secrets.token_urlsafe(48).encode())
    if restrict_existing(path):
        log.warning("%s was readable by other users; it is now 0600", path)
    value = path.read_text().strip()
    if not value:
        raise RuntimeError(f"{path} is empty; delete it and start again to generate a new secret")
    return value


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    role: str
    credential: str = ""
    issued_at: float | None = None
    """When it was issued, in seconds since the epoch to the millisecond (``iat_ms``; None: a
    token without it)."""


def credential_tag(password_hash: str) -> str:
    """A short digest of the password hash: a token names the password it was issued under, so
    changing the password ends every older session."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


class TokenIssuer:
    """Issues and checks the bearer tokens of the management API."""

    def __init__(self, secret: str, ttl_s: int) -> None:
        self._secret = secret
        self.ttl_s = ttl_s

    def issue(self, user_id: str, role: str, credential: str = "") -> str:
        now = datetime.now(UTC)
        claims = {
            "sub": user_id,
            "role": role,
            "cred": credential,
            "iat": now,
            "iat_ms": int(now.timestamp() * 1000),
            "exp": now + timedelta(seconds=self.ttl_s),
            "jti": secrets.token_hex(8),
        }
        return jwt.encode(claims, self._secret, algorithm=JWT_ALGORITHM)

    def verify(self, token: str) -> TokenClaims:
        try:
            claims = jwt.decode(
                token, self._secret, algorithms=[JWT_ALGORITHM], options={"require": ["sub", "exp"]}
            )
        except jwt.ExpiredSignatureError as exc:
            raise Unauthorized("the access token has expired; log in again") from exc
        except jwt.PyJWTError as exc:
            raise Unauthorized("invalid access token") from exc
        return TokenClaims(
            user_id=str(claims["sub"]),
            role=str(claims.get("role", "user")),
            credential=str(claims.get("cred", "")),
            issued_at=claims["iat_ms"] / 1000 if isinstance(claims.get("iat_ms"), int) else None,
        )
