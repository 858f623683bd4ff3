"""Passwords (argon2), access tokens (JWT, HS256) and API keys (shown once, stored as SHA-256)."""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from management_api.errors import Unauthorized

API_KEY_PREFIX = "mg_"
DISPLAY_PREFIX_CHARS = 10
JWT_ALGORITHM = "HS256"

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


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
    if path.is_file():
        value = path.read_text().strip()
        if value:
            return value
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, value.encode())
    finally:
        os.close(fd)
    return value


@dataclass(frozen=True)
class TokenClaims:
    user_id: str
    role: str
    credential: str = ""


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
        )
