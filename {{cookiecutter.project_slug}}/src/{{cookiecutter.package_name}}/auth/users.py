"""The user store: what the login route, the quota and the command line do with users."""

import asyncio
import re
from dataclasses import dataclass
from decimal import Decimal

from cachetools import TTLCache
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from {{ cookiecutter.package_name }}.auth.models import User, to_micro_ftns
from {{ cookiecutter.package_name }}.auth.security import Passwords

USERNAME_PATTERN = re.compile(r"[A-Za-z0-9._@-]{1,64}")
MIN_PASSWORD_CHARS = 8


class UserError(ValueError):
    """A user could not be created or changed; the message says why."""


def check_username(username: str) -> str:
    if not USERNAME_PATTERN.fullmatch(username):
        raise UserError("a username is 1 to 64 letters, digits or . _ @ -")
    return username


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_CHARS:
        raise UserError(f"a password has at least {MIN_PASSWORD_CHARS} characters")
    return password


def check_quota(quota: Decimal) -> int:
    if not quota.is_finite() or quota < 0:
        raise UserError("a quota is a number of FTNS, 0 or more")
    return to_micro_ftns(quota)


async def create_user(
    sessions: async_sessionmaker[AsyncSession],
    passwords: Passwords,
    username: str,
    password: str,
    quota: Decimal,
) -> User:
    user = User(
        username=check_username(username),
        password_hash=await passwords.hash(check_password(password)),
        quota_micro_ftns=check_quota(quota),
        is_active=True,
    )
    try:
        async with sessions.begin() as session:
            session.add(user)
    except IntegrityError as exc:
        raise UserError(f"user {username!r} already exists") from exc
    return user


async def find_user(sessions: async_sessionmaker[AsyncSession], username: str) -> User | None:
    async with sessions() as session:
        user: User | None = await session.scalar(select(User).where(User.username == username))
        return user


@dataclass(slots=True)
class Account:
    """What the AI routes need of a user: who, whether active, and the quota last seen."""

    username: str
    is_active: bool
    quota_micro_ftns: int


class RecentUsers:
    """Users as the database had them at most `max_age_seconds` ago, for the AI routes.

    Reading the user behind a token on every query would cost more than a cache hit does: here
    a user is read once per `max_age_seconds` and process. A user deactivated, or given a quota
    below 1 FTNS, from elsewhere is refused by every worker within that time. The quota stage
    reports each quota it changes (`quota_left`), so a process knows its own charges at once;
    the quota itself is always taken from the database, atomically. 0 reads on every request.
    """

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        max_age_seconds: float,
        max_users: int = 10_000,
    ) -> None:
        self._sessions = sessions
        self._recent: TTLCache[str, Account] | None = (
            TTLCache(max_users, max_age_seconds) if max_age_seconds > 0 else None
        )
        # Reads under way: when a busy user's entry expires, the requests in flight for them
        # share one read instead of each sending its own.
        self._reading: dict[str, asyncio.Task[Account | None]] = {}

    async def get(self, username: str) -> Account | None:
        if self._recent is None:
            return await self._read(username)
        try:
            return self._recent[username]
        except KeyError:  # not read yet, or read too long ago
            pass
        reading = self._reading.get(username)
        if reading is None:
            reading = self._reading[username] = asyncio.create_task(self._read(username))
            reading.add_done_callback(lambda _: self._reading.pop(username, None))
        # Shielded: a caller that leaves does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    async def _read(self, username: str) -> Account | None:
        user = await find_user(self._sessions, username)
        if user is None:
            return None
        account = Account(user.username, user.is_active, user.quota_micro_ftns)
        if self._recent is not None:
            self._recent[username] = account
        return account

    def quota_left(self, username: str, quota_micro_ftns: int) -> None:
        """What the database just said is left of a user's quota. Kept without renewing the
        entry: what it says of the rest of the user grows no older than `max_age_seconds`."""
        if self._recent is None:
            return
        try:
            account = self._recent[username]
        except KeyError:
            return
        account.quota_micro_ftns = quota_micro_ftns


async def list_users(sessions: async_sessionmaker[AsyncSession]) -> list[User]:
    async with sessions() as session:
        return list(await session.scalars(select(User).order_by(User.username)))


async def set_quota(
    sessions: async_sessionmaker[AsyncSession], username: str, quota: Decimal
) -> None:
    await _update(sessions, username, quota_micro_ftns=check_quota(quota))


async def set_active(
    sessions: async_sessionmaker[AsyncSession], username: str, *, active: bool
) -> None:
    await _update(sessions, username, is_active=active)


async def set_password_hash(
    sessions: async_sessionmaker[AsyncSession], username: str, password_hash: str
) -> None:
    await _update(sessions, username, password_hash=password_hash)


async def _update(
    sessions: async_sessionmaker[AsyncSession], username: str, **values: object
) -> None:
    async with sessions.begin() as session:
        found = await session.scalar(
            update(User).where(User.username == username).values(**values).returning(User.id)
        )
    if found is None:
        raise UserError(f"no user {username!r}")
