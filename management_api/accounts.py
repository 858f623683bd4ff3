"""Users: creation, login, admin management, and the first admin at start."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from management_api.db import Model, User, utcnow
from management_api.errors import (
    Conflict,
    Forbidden,
    InvalidCredentials,
    InvalidInput,
    NotFound,
    TooManyRequests,
    Unauthorized,
)
from management_api.login_throttle import LoginAttempt, LoginThrottle, LoginThrottled
from management_api.security import (
    PasswordHashing,
    TokenIssuer,
    credential_tag,
    generate_password,
    hash_password,
)
from schemas.resources import (
    PasswordChange,
    Role,
    TokenResponse,
    UserCreate,
    UserPublic,
    UserUpdate,
)

log = logging.getLogger(__name__)

LAST_ADMIN = "LAST_ADMIN"
"""409: the change would leave no active admin."""
ACCOUNT_DEACTIVATED = "ACCOUNT_DEACTIVATED"
"""403 at login with the right password, 401 for a token of a deactivated account."""
WRONG_PASSWORD = "WRONG_PASSWORD"
"""403: a password change whose current password is wrong (counted by the login throttle)."""

# Verifying against a real hash when the user does not exist keeps login timing uniform, so the
# answer time does not tell which usernames exist.
_DUMMY_HASH = hash_password("not-a-real-password")


@dataclass(frozen=True)
class Principal:
    """Who is calling: the authenticated user's id and role."""

    user_id: str
    username: str
    role: Role

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN


def user_public(user: User) -> UserPublic:
    return UserPublic(
        id=user.id,
        username=user.username,
        role=Role(user.role),
        created_at=user.created_at,
        active=user.active,
        last_login=user.last_login_at,
    )


def same_username(username: str) -> ColumnElement[bool]:
    """Usernames match ignoring case (the unique index is on ``lower(username)``)."""
    return func.lower(User.username) == username.lower()


async def lock_admins(session: AsyncSession) -> Sequence[str]:
    """Start the transaction of a change to who is admin; the ids of the active admins, locked.

    SQLite takes its write lock at once (``BEGIN IMMEDIATE``), PostgreSQL locks every admin row
    (``FOR UPDATE``), so two such changes run one after the other and the second one counts the
    admins the first one left: "at least one admin" holds however they interleave. Must be the
    session's first statement.
    """
    connection = await session.connection()
    if connection.dialect.name == "sqlite":
        await connection.exec_driver_sql("BEGIN IMMEDIATE")
    admins = await session.scalars(
        select(User.id)
        .where(User.role == Role.ADMIN, User.active)
        .order_by(User.id)
        .with_for_update()
    )
    return admins.all()


class Accounts:
    """Users and their credentials in the metadata DB."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        tokens: TokenIssuer,
        hashing: PasswordHashing | None = None,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self._sessions = sessions
        self._tokens = tokens
        self.hashing = hashing or PasswordHashing()
        self.throttle = throttle or LoginThrottle()

    def close(self) -> None:
        self.hashing.close()

    async def _attempt(self, username: str, address: str) -> LoginAttempt:
        """A password check admitted by the throttle, or 429 (logins and password changes
        share it: the change form cannot be used to guess a password either)."""
        try:
            return await self.throttle.begin(username, address)
        except LoginThrottled as exc:
            raise TooManyRequests(
                "too many failed password attempts; wait before trying again",
                details={"retry_after_s": exc.retry_after_s, "limited_by": exc.reason},
                headers={"Retry-After": str(exc.retry_after_s)},
            ) from exc

    async def login(self, username: str, password: str, address: str = "local") -> TokenResponse:
        """A token for the right password; repeated failures get 429 (see ``LoginThrottle``)."""
        attempt = await self._attempt(username, address)
        try:
            # The DB connection goes back to the pool before hashing: a login burst waiting for
            # the hash workers must not hold every connection the other routes need.
            async with self._sessions() as session:
                user = await session.scalar(select(User).where(same_username(username)))
            ok = await self.hashing.verify(user.password_hash if user else _DUMMY_HASH, password)
            if user is None or not ok:
                attempt.failed()
                log.warning("failed login for username %r from %s", username, address)
                raise InvalidCredentials("wrong username or password")
            if not user.active:
                # Said only to whoever knows the password; no verdict for the throttle (the
                # address is not trusted for an account that cannot log in).
                log.warning("login to deactivated account %r from %s", user.username, address)
                raise Forbidden(
                    "this account is deactivated; ask an administrator",
                    code=ACCOUNT_DEACTIVATED,
                )
            attempt.succeeded()
        finally:
            attempt.close()
        user.last_login_at = utcnow()
        async with self._sessions() as session:
            await session.execute(
                update(User).where(User.id == user.id).values(last_login_at=user.last_login_at)
            )
            await session.commit()
        token = self._tokens.issue(user.id, user.role, credential_tag(user.password_hash))
        return TokenResponse(
            access_token=token, expires_in=self._tokens.ttl_s, user=user_public(user)
        )

    async def authenticate(self, token: str) -> Principal:
        claims = self._tokens.verify(token)
        async with self._sessions() as session:
            user = await session.get(User, claims.user_id)
        if user is None:
            raise Unauthorized("this account no longer exists")
        if not user.active:
            raise Unauthorized("this account is deactivated", code=ACCOUNT_DEACTIVATED)
        if not hmac.compare_digest(claims.credential, credential_tag(user.password_hash)):
            raise Unauthorized("the password changed since this token was issued; log in again")
        if user.tokens_after is not None and (
            claims.issued_at is None or claims.issued_at < user.tokens_after.timestamp()
        ):
            raise Unauthorized(
                "this account was deactivated since this token was issued; log in again",
                code=ACCOUNT_DEACTIVATED,
            )
        return Principal(user_id=user.id, username=user.username, role=Role(user.role))

    async def change_password(
        self, who: Principal, body: PasswordChange, address: str = "local"
    ) -> TokenResponse:
        """The caller's own password, proven by the current one; a fresh token for this session.

        Every token issued before names the old password and stops working (a stolen session
        ends with the change); the caller keeps working with the token returned here. A wrong
        current password counts as a failed login for the throttle (403, then 429).
        """
        if body.new_password == body.current_password:
            raise InvalidInput(
                "the new password must differ from the current one",
                details={"field": "new_password"},
            )
        attempt = await self._attempt(who.username, address)
        try:
            async with self._sessions() as session:
                user = await session.get(User, who.user_id)
            if user is None or not user.active:
                raise Unauthorized("this account no longer exists or is deactivated")
            if not await self.hashing.verify(user.password_hash, body.current_password):
                attempt.failed()
                log.warning("wrong current password for %r from %s", user.username, address)
                raise Forbidden("the current password is wrong", code=WRONG_PASSWORD)
            attempt.succeeded()
        finally:
            attempt.close()
        old_hash = user.password_hash
        new_hash = await self.hashing.hash(body.new_password)
        async with self._sessions() as session:
            changed = await session.execute(
                update(User)
                .where(User.id == user.id, User.password_hash == old_hash, User.active)
                .values(password_hash=new_hash)
            )
            await session.commit()
        if changed.rowcount != 1:  # type: ignore[attr-defined]
            raise Conflict("the password or the account changed meanwhile; log in again")
        user.password_hash = new_hash
        log.info("user %r changed their password", user.username)
        token = self._tokens.issue(user.id, user.role, credential_tag(new_hash))
        return TokenResponse(
            access_token=token, expires_in=self._tokens.ttl_s, user=user_public(user)
        )

    async def get(self, user_id: str) -> UserPublic:
        async with self._sessions() as session:
            user = await session.get(User, user_id)
        if user is None:
            raise NotFound("no such user", details={"user_id": user_id})
        return user_public(user)

    async def list_users(self) -> list[UserPublic]:
        async with self._sessions() as session:
            users = (await session.scalars(select(User).order_by(User.created_at))).all()
        return [user_public(user) for user in users]

    async def create(self, body: UserCreate) -> UserPublic:
        taken = Conflict(
            f"username {body.username!r} is taken (usernames ignore case)",
            details={"username": body.username},
        )
        async with self._sessions() as session:
            if await session.scalar(select(User.id).where(same_username(body.username))):
                raise taken
        password_hash = await self.hashing.hash(body.password)
        async with self._sessions() as session:
            user = User(username=body.username, password_hash=password_hash, role=body.role)
            session.add(user)
            try:
                await session.commit()
            except IntegrityError as exc:  # created meanwhile: the unique index decides
                raise taken from exc
            return user_public(user)

    async def update(self, user_id: str, body: UserUpdate, actor: Principal) -> UserPublic:
        password_hash = None
        if body.password is not None:
            # Hashed before the transaction: the admin lock is held for milliseconds, not a hash.
            password_hash = await self.hashing.hash(body.password)
        async with self._sessions() as session:
            admins = await lock_admins(session)
            user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
            if user is None:
                raise NotFound("no such user", details={"user_id": user_id})
            last_admin = user.id in admins and len(admins) <= 1
            if body.role is not None and body.role != user.role:
                if last_admin:
                    raise Conflict(
                        "the last active admin cannot lose the admin role", code=LAST_ADMIN
                    )
                user.role = body.role
            if body.active is False and user.active:
                if user.id == actor.user_id:
                    raise InvalidInput("you cannot deactivate your own account")
                if last_admin:
                    raise Conflict("the last active admin cannot be deactivated", code=LAST_ADMIN)
            if body.active is False and user.active:
                user.tokens_after = utcnow()  # its sessions end for good, reactivated or not
            if body.active is not None:
                user.active = body.active
            if password_hash is not None:
                user.password_hash = password_hash
            await session.commit()
            if body.role is not None or body.active is not None or password_hash is not None:
                log.info(
                    "user %r changed by %r (role=%s, active=%s, password=%s)",
                    user.username,
                    actor.username,
                    body.role,
                    body.active,
                    password_hash is not None,
                )
            return user_public(user)

    async def delete(self, user_id: str, actor: Principal) -> None:
        if user_id == actor.user_id:
            raise InvalidInput("you cannot delete your own account")
        async with self._sessions() as session:
            admins = await lock_admins(session)
            user = await session.get(User, user_id, with_for_update=True, populate_existing=True)
            if user is None:
                raise NotFound("no such user", details={"user_id": user_id})
            if user.id in admins and len(admins) <= 1:
                raise Conflict("the last active admin cannot be deleted", code=LAST_ADMIN)
            models = await session.scalar(
                select(func.count()).select_from(Model).where(Model.owner_id == user_id)
            )
            if models:
                # Deleting them here would drop APIs without telling ingress; do it explicitly.
                raise Conflict(
                    "this user still owns models; delete their APIs and models first",
                    details={"models": int(models)},
                )
            await session.delete(user)
            await session.commit()
        log.info("user %r deleted by %r", user.username, actor.username)

    async def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin when there is none; return the generated password, if any."""
        async with self._sessions() as session:
            active_admin = select(User.id).where(User.role == Role.ADMIN, User.active).limit(1)
            if await session.scalar(active_admin):
                return None
        generated = None
        if not password:
            password = generated = generate_password()
        password_hash = await self.hashing.hash(password)
        async with self._sessions() as session:
            if await lock_admins(session):
                return None  # another process made one meanwhile
            existing = await session.scalar(select(User).where(same_username(username)))
            if existing is not None:
                existing.role = Role.ADMIN
                existing.active = True
                existing.password_hash = password_hash
            else:
                session.add(User(username=username, password_hash=password_hash, role=Role.ADMIN))
            await session.commit()
            return generated

    async def set_password(self, username: str, password: str, role: Role) -> UserPublic:
        """Create the account or reset its password (the demo command's account)."""
        password_hash = await self.hashing.hash(password)
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(same_username(username)))
            if user is None:
                user = User(username=username, password_hash=password_hash, role=role)
                session.add(user)
            else:
                user.password_hash = password_hash
            await session.commit()
            return user_public(user)
