"""Password hashing (argon2id through pwdlib) and access tokens (PyJWT, HS256)."""

import asyncio
import functools
import time
from datetime import UTC, datetime, timedelta

import jwt
from cachetools import LRUCache
from pwdlib import PasswordHash
from pwdlib.hashers.argon2 import Argon2Hasher

from {{ cookiecutter.package_name }}.auth.config import AuthSettings

ALGORITHM = "HS256"


class Passwords:
    """Hashes and checks passwords off the event loop: argon2 is slow on purpose."""

    def __init__(self, time_cost: int, memory_cost_kib: int, parallelism: int) -> None:
        hasher = Argon2Hasher(
            time_cost=time_cost, memory_cost=memory_cost_kib, parallelism=parallelism
        )
        self._hash = PasswordHash([hasher])
        # Checked against when the username is unknown, so that an unknown name costs as much
        # time as a wrong password and response times do not reveal which names exist.
        self._dummy_hash: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hash.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> tuple[bool, str | None]:
        """Whether the password matches, and a new hash when the stored one is outdated.

        With no hash (unknown user) a dummy hash is checked instead, and the answer is False.
        """
        if password_hash is None:
            if self._dummy_hash is None:
                self._dummy_hash = await self.hash("no user has this password")
            await asyncio.to_thread(self._hash.verify, password, self._dummy_hash)
            return False, None
        return await asyncio.to_thread(self._hash.verify_and_update, password, password_hash)


@functools.cache
def _passwords(time_cost: int, memory_cost_kib: int, parallelism: int) -> Passwords:
    return Passwords(time_cost, memory_cost_kib, parallelism)


def passwords_for(settings: AuthSettings) -> Passwords:
    """One `Passwords` per set of argon2 parameters, made on first use."""
    return _passwords(
        settings.argon2_time_cost, settings.argon2_memory_cost_kib, settings.argon2_parallelism
    )


def create_access_token(username: str, settings: AuthSettings) -> tuple[str, int]:
    """A signed token for `username`, and its lifetime in seconds."""
    lifetime = timedelta(minutes=settings.access_token_expire_minutes)
    issued = datetime.now(UTC)
    claims = {"sub": username, "iat": issued, "exp": issued + lifetime}
    token = jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=ALGORITHM)
    return token, int(lifetime.total_seconds())


def read_access_token(token: str, settings: AuthSettings) -> str:
    """The username a valid token names.

    Raises `jwt.InvalidTokenError` for anything else: malformed, tampered, expired, signed with
    another key or another algorithm (`none` included), or missing a claim.
    """
    return _verified(token, settings)[0]


def _verified(token: str, settings: AuthSettings) -> tuple[str, float]:
    """The subject of a valid token, and when it expires (Unix time)."""
    claims = jwt.decode(
        token,
        settings.secret_key.get_secret_value(),
        algorithms=[ALGORITHM],
        options={"require": ["sub", "iat", "exp"]},
    )
    subject = claims["sub"]
    if not isinstance(subject, str) or not subject:
        raise jwt.InvalidTokenError("The subject is not a username")
    return subject, float(claims["exp"])


class VerifiedTokens:
    """Reads access tokens like `read_access_token`, checking each token's signature once.

    A token is the same bytes every time its holder sends it, so once verified its subject is
    kept, by the exact token, until the token expires; a token that fails is checked again the
    next time, never kept.
    """

    def __init__(self, settings: AuthSettings, max_tokens: int = 10_000) -> None:
        self._settings = settings
        self._subjects: LRUCache[str, tuple[str, float]] = LRUCache(max_tokens)

    def subject(self, token: str) -> str:
        known = self._subjects.get(token)
        if known is not None and known[1] > time.time():
            return known[0]
        verified = self._subjects[token] = _verified(token, self._settings)
        return verified[0]
