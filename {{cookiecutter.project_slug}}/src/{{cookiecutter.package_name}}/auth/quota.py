"""The quota stage of the query path: a user spends no more FTNS than their quota holds.

Each query first reserves its allocation from the quota with one conditional UPDATE (it only
succeeds while the quota covers it), then gets back what PRSM did not charge. However many
queries run at once, on however many workers, the reservations never add up to more than the
quota. PRSM allocations are whole FTNS, so a query needs at least 1 FTNS of quota left.
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import anyio
import asyncpg
from sqlalchemy import Executable, bindparam, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.auth.models import MICRO_FTNS, User, from_micro_ftns, to_micro_ftns
from {{ cookiecutter.package_name }}.auth.users import Account
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.errors import PRSMError
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent

# A reservation fails only when another query took from the quota in between; try again.
RESERVE_ATTEMPTS = 10
# How long a statement waits for a pooled connection before the service answers 503, as
# SQLAlchemy's pool waits.
STATEMENT_POOL_TIMEOUT_SECONDS = 30

# The statements of the stage, built once. Each returns what is left of the quota after it.
_QUOTA_LEFT = select(User.quota_micro_ftns).where(User.username == bindparam("user"))
_TAKE = (
    update(User)
    .where(User.username == bindparam("user"), User.quota_micro_ftns >= bindparam("amount"))
    .values(quota_micro_ftns=User.quota_micro_ftns - bindparam("amount"))
    .returning(User.quota_micro_ftns)
)
_GIVE_BACK = (
    update(User)
    .where(User.username == bindparam("user"))
    .values(quota_micro_ftns=User.quota_micro_ftns + bindparam("amount"))
    .returning(User.quota_micro_ftns)
)

logger = logging.getLogger(__name__)


class QuotaExceededError(PRSMError):
    status_code = 429
    error_type = "quota_exceeded"


def require_quota(account: Account) -> None:
    """Refuses a user whose quota cannot cover the smallest allocation (1 FTNS)."""
    if account.quota_micro_ftns < MICRO_FTNS:
        raise _exceeded(account.quota_micro_ftns)


class QuotaAnswerer:
    def __init__(
        self,
        answerer: Answerer,
        database: AsyncEngine,
        statements: "asyncpg.Pool[Any] | None" = None,
    ) -> None:
        """`statements`, on PostgreSQL, is the pool the stage's statements run on (see
        `open_statement_pool`); without it they run through `database`."""
        self._answerer = answerer
        # Each statement is a transaction of its own: one round trip, no BEGIN and COMMIT.
        self._database = database.execution_options(isolation_level="AUTOCOMMIT")
        self._statements = statements
        # Compiled once by SQLAlchemy for asyncpg, whose idle connections are in no
        # transaction: each statement commits by itself there too.
        self._compiled: dict[Executable, tuple[str, list[str]]] = {}
        if statements is not None:
            for statement in (_QUOTA_LEFT, _TAKE, _GIVE_BACK):
                compiled = statement.compile(dialect=database.dialect)
                self._compiled[statement] = (str(compiled), list(compiled.positiontup or ()))
        # Told what is left of a user's quota each time a query changed it.
        self.quota_left: Callable[[str, int], None] = lambda username, micro_ftns: None

    async def query(self, query: PRSMQuery) -> QueryResult:
        allocation = await self._reserve(query)
        reserved = allocation * MICRO_FTNS
        spent = 0
        try:
            result = await self._answerer.query(replace(query, context_allocation=allocation))
            spent = _spent(result.ftns_charged, reserved)
            return result
        finally:
            await self._give_back(query.user_id, reserved - spent)

    async def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        allocation = await self._reserve(query)
        reserved = allocation * MICRO_FTNS
        spent = 0
        answered = settled = False
        try:
            async for event in self._answerer.stream(replace(query, context_allocation=allocation)):
                if event.type in ("end", "error"):
                    if event.type == "end":
                        spent = _spent(event.ftns_charged or 0.0, reserved)
                    # Settled before the caller sees the last event: it may stop reading there.
                    await self._give_back(query.user_id, reserved - spent)
                    settled = True
                yield event
                answered = answered or event.type == "content"
        except (GeneratorExit, asyncio.CancelledError):
            # The caller left before the end. With part of the answer read, it pays the
            # allocation (what PRSM charged is unknown); with none of it, nothing.
            spent = reserved if answered else 0
            raise
        finally:
            # Otherwise PRSM failed or ended the stream early, and nothing is charged.
            if not settled:
                await self._give_back(query.user_id, reserved - spent)

    async def _reserve(self, query: PRSMQuery) -> int:
        """Takes the query's allocation, in whole FTNS, from its user's quota."""
        requested = query.context_allocation
        # Most often the quota covers the whole allocation: one statement takes it.
        if requested is not None and await self._take(query.user_id, requested * MICRO_FTNS):
            return requested
        for _ in range(RESERVE_ATTEMPTS):
            left = await self._scalar(_QUOTA_LEFT, user=query.user_id)
            if left is None or left < MICRO_FTNS:
                raise _exceeded(left or 0)
            allocation = left // MICRO_FTNS
            if requested is not None:
                allocation = min(allocation, requested)
            if await self._take(query.user_id, allocation * MICRO_FTNS):
                return allocation
        raise QuotaExceededError(
            "FTNS quota exceeded: the quota is taken by queries in progress", retry_after=1
        )

    async def _take(self, username: str, amount: int) -> bool:
        """Takes `amount` micro-FTNS from the quota if it holds that much, in one UPDATE."""
        left = await self._scalar(_TAKE, user=username, amount=amount)
        if left is None:
            return False
        self.quota_left(username, left)
        return True

    async def _give_back(self, username: str, amount: int) -> None:
        if amount <= 0:
            return
        # Shielded: a caller that disconnects must not cancel the refund halfway.
        with anyio.CancelScope(shield=True):
            left = await self._scalar(_GIVE_BACK, user=username, amount=amount)
        if left is not None:
            self.quota_left(username, left)

    async def _scalar(self, statement: Executable, **parameters: object) -> int | None:
        left: int | None
        if self._statements is None:
            async with self._database.connect() as connection:
                left = await connection.scalar(statement, parameters)
            return left
        sql, names = self._compiled[statement]
        try:
            async with self._statements.acquire(timeout=STATEMENT_POOL_TIMEOUT_SECONDS) as pooled:
                left = await pooled.fetchval(sql, *map(parameters.get, names))
        except (
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            OSError,
            TimeoutError,
        ) as exc:
            # As SQLAlchemy reports it: the service answers 503 for the database's errors.
            raise OperationalError(sql, parameters, exc) from exc
        return left


def _spent(ftns_charged: float, reserved: int) -> int:
    spent = to_micro_ftns(ftns_charged)
    if spent > reserved:
        # PRSM caps a query at its allocation; a node that does not is charged no further.
        logger.warning(
            "PRSM charged more than the allocation",
            extra={"ftns_charged": ftns_charged, "allocation": from_micro_ftns(reserved)},
        )
        return reserved
    return spent


def _exceeded(left_micro_ftns: int) -> QuotaExceededError:
    left = from_micro_ftns(left_micro_ftns).normalize()
    return QuotaExceededError(
        f"FTNS quota exceeded: {left:f} FTNS left, and a query needs at least 1 FTNS"
    )
