"""The quota stage of the query path: a user spends no more FTNS than their quota holds.

Each query first reserves its allocation from the quota with one conditional UPDATE (it only
succeeds while the quota covers it), then gets back what PRSM did not charge. However many
queries run at once, on however many workers, the reservations never add up to more than the
quota. PRSM allocations are whole FTNS, so a query needs at least 1 FTNS of quota left.
"""

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace

import anyio
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from {{ cookiecutter.package_name }}.auth.models import MICRO_FTNS, User, from_micro_ftns, to_micro_ftns
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.errors import PRSMError
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent

# A reservation fails only when another query took from the quota in between; try again.
RESERVE_ATTEMPTS = 10

logger = logging.getLogger(__name__)


class QuotaExceededError(PRSMError):
    status_code = 429
    error_type = "quota_exceeded"


def require_quota(user: User) -> None:
    """Refuses a user whose quota cannot cover the smallest allocation (1 FTNS)."""
    if user.quota_micro_ftns < MICRO_FTNS:
        raise _exceeded(user.quota_micro_ftns)


class QuotaAnswerer:
    def __init__(self, answerer: Answerer, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._answerer = answerer
        self._sessions = sessions

    async def query(self, query: PRSMQuery) -> QueryResult:
        allocation = await self._reserve(query)
        reserved = allocation * MICRO_FTNS
        spent = 0
        try:
            result = await self._answerer.query(replace(query, context_allocation=allocation))
            # A cached answer cost PRSM nothing, whatever it cost the first time.
            if not result.from_cache:
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
        for _ in range(RESERVE_ATTEMPTS):
            async with self._sessions() as session:
                left = await session.scalar(
                    select(User.quota_micro_ftns).where(User.username == query.user_id)
                )
            if left is None or left < MICRO_FTNS:
                raise _exceeded(left or 0)
            allocation = left // MICRO_FTNS
            if query.context_allocation is not None:
                allocation = min(allocation, query.context_allocation)
            amount = allocation * MICRO_FTNS
            async with self._sessions.begin() as session:
                reserved = await session.scalar(
                    update(User)
                    .where(User.username == query.user_id, User.quota_micro_ftns >= amount)
                    .values(quota_micro_ftns=User.quota_micro_ftns - amount)
                    .returning(User.id)
                )
            if reserved is not None:
                return allocation
        raise QuotaExceededError(
            "FTNS quota exceeded: the quota is taken by queries in progress", retry_after=1
        )

    async def _give_back(self, username: str, amount: int) -> None:
        if amount <= 0:
            return
        # Shielded: a caller that disconnects must not cancel the refund halfway.
        with anyio.CancelScope(shield=True):
            async with self._sessions.begin() as session:
                await session.execute(
                    update(User)
                    .where(User.username == username)
                    .values(quota_micro_ftns=User.quota_micro_ftns + amount)
                )


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
