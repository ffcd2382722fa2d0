"""Failed-login limits per username and per client address.

An attempt is counted before the password is checked, and counts as a failure until it
succeeds: one atomic statement per counter, so that parallel guesses cannot slip past the
limit between a check and a count. The counters live in the database, not in process memory,
so that every worker of the service (and every replica) counts the same failures.
"""

import hashlib
import math
import time

from sqlalchemy import case, delete, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from {{ cookiecutter.package_name }}.auth.config import AuthSettings
from {{ cookiecutter.package_name }}.auth.models import LoginFailures


class LoginThrottle:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], settings: AuthSettings) -> None:
        self._sessions = sessions
        self._window = settings.login_failure_window_seconds
        self._per_username = settings.login_max_failures
        self._per_address = settings.login_max_failures_per_address

    async def attempt(self, username: str, address: str | None) -> int | None:
        """Counts an attempt; the seconds to wait when it passes a limit, else None."""
        now = time.time()
        window_open = LoginFailures.window_started_at > now - self._window
        waits = []
        async with self._sessions.begin() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
            for key, limit in self._limits(username, address).items():
                statement = (
                    insert(LoginFailures)
                    .values(key=key, failures=1, window_started_at=now)
                    .on_conflict_do_update(
                        index_elements=[LoginFailures.key],
                        set_={
                            # A window that has passed starts again from this attempt.
                            "failures": case((window_open, LoginFailures.failures + 1), else_=1),
                            "window_started_at": case(
                                (window_open, LoginFailures.window_started_at), else_=now
                            ),
                        },
                    )
                    .returning(LoginFailures.failures, LoginFailures.window_started_at)
                )
                failures, started = (await session.execute(statement)).one()
                if failures > limit:
                    waits.append(started + self._window - now)
            await session.execute(delete(LoginFailures).where(~window_open))
        return max(1, math.ceil(max(waits))) if waits else None

    async def succeeded(self, username: str, address: str | None) -> None:
        """Clears the username's failures, and takes this attempt back from the address's.

        The address keeps its other failures: a success on one account must not wipe out
        guesses at other accounts from the same address.
        """
        async with self._sessions.begin() as session:
            await session.execute(
                delete(LoginFailures).where(LoginFailures.key == _key("user", username))
            )
            if address:
                await session.execute(
                    update(LoginFailures)
                    .where(LoginFailures.key == _key("address", address))
                    .where(LoginFailures.failures > 0)
                    .values(failures=LoginFailures.failures - 1)
                )

    def _limits(self, username: str, address: str | None) -> dict[str, int]:
        limits = {_key("user", username): self._per_username}
        if address:
            limits[_key("address", address)] = self._per_address
        return limits


def _key(scope: str, value: str) -> str:
    # A digest: the table holds no usernames or addresses in clear.
    return f"{scope}:{hashlib.sha256(value.encode()).hexdigest()}"
