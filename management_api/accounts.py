"""Users: creation, login, admin management, and the first admin at start."""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from management_api.db import Model, User, utcnow
from management_api.errors import Conflict, InvalidCredentials, InvalidInput, NotFound, Unauthorized
from management_api.security import (
    TokenIssuer,
    credential_tag,
    generate_password,
    hash_password,
    verify_password,
)
from schemas.resources import Role, TokenResponse, UserCreate, UserPublic, UserUpdate

log = logging.getLogger(__name__)

# Verifying against a real hash when the user does not exist keeps login timing uniform.
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
        id=user.id, username=user.username, role=Role(user.role), created_at=user.created_at
    )


class Accounts:
    """Users and their credentials in the metadata DB."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], tokens: TokenIssuer) -> None:
        self._sessions = sessions
        self._tokens = tokens

    async def login(self, username: str, password: str) -> TokenResponse:
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            if user is None:
                verify_password(_DUMMY_HASH, password)
                raise InvalidCredentials("wrong username or password")
            if not verify_password(user.password_hash, password):
                raise InvalidCredentials("wrong username or password")
            user.last_login_at = utcnow()
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
        if not hmac.compare_digest(claims.credential, credential_tag(user.password_hash)):
            raise Unauthorized("the password changed since this token was issued; log in again")
        return Principal(user_id=user.id, username=user.username, role=Role(user.role))

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
        async with self._sessions() as session:
            user = User(
                username=body.username, password_hash=hash_password(body.password), role=body.role
            )
            session.add(user)
            try:
                await session.commit()
            except IntegrityError as exc:
                raise Conflict(
                    f"username {body.username!r} is taken", details={"username": body.username}
                ) from exc
            return user_public(user)

    async def update(self, user_id: str, body: UserUpdate, actor: Principal) -> UserPublic:
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("no such user", details={"user_id": user_id})
            if body.role is not None and body.role != user.role:
                if user.role == Role.ADMIN and await self._admin_count(session) <= 1:
                    raise Conflict("the last admin cannot lose the admin role")
                user.role = body.role
            if body.password is not None:
                user.password_hash = hash_password(body.password)
            await session.commit()
            return user_public(user)

    async def delete(self, user_id: str, actor: Principal) -> None:
        if user_id == actor.user_id:
            raise InvalidInput("you cannot delete your own account")
        async with self._sessions() as session:
            user = await session.get(User, user_id)
            if user is None:
                raise NotFound("no such user", details={"user_id": user_id})
            if user.role == Role.ADMIN and await self._admin_count(session) <= 1:
                raise Conflict("the last admin cannot be deleted")
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

    @staticmethod
    async def _admin_count(session: AsyncSession) -> int:
        count = await session.scalar(
            select(func.count()).select_from(User).where(User.role == Role.ADMIN)
        )
        return int(count or 0)

    async def ensure_admin(self, username: str, password: str | None) -> str | None:
        """Create the first admin when there is none; return the generated password, if any."""
        async with self._sessions() as session:
            if await self._admin_count(session) > 0:
                return None
            generated = None
            if not password:
                password = generated = generate_password()
            existing = await session.scalar(select(User).where(User.username == username))
            if existing is not None:
                existing.role = Role.ADMIN
                existing.password_hash = hash_password(password)
            else:
                session.add(
                    User(username=username, password_hash=hash_password(password), role=Role.ADMIN)
                )
            await session.commit()
            return generated

    async def set_password(self, username: str, password: str, role: Role) -> UserPublic:
        """Create the account or reset its password (the demo command's account)."""
        async with self._sessions() as session:
            user = await session.scalar(select(User).where(User.username == username))
            if user is None:
                user = User(username=username, password_hash=hash_password(password), role=role)
                session.add(user)
            else:
                user.password_hash = hash_password(password)
            await session.commit()
            return user_public(user)
