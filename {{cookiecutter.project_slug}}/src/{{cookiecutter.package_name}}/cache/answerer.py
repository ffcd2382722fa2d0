"""The caching stage of the query path: Redis in front of the stage below, never in its way.

A hit is answered from Redis with `from_cache` set and a cost of 0: nothing was charged for it.
Identical misses that arrive while one is in flight join it (single flight) instead of calling
PRSM again; they share its answer and are reported like hits (`from_cache`, cost 0), because
only the request that made the call paid for it. When Redis is down, refusing or slower than
`CACHE_TIMEOUT_MS`, queries are answered uncached; caching resumes on its own once Redis answers.
"""

import asyncio
import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from {{ cookiecutter.package_name }}.cache.config import CACHE_SCHEMA_VERSION
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent
from {{ cookiecutter.package_name }}.redis_client import redis_answers

logger = logging.getLogger(__name__)

T = TypeVar("T")


class CachedAnswer(BaseModel):
    """What a cache entry holds: the answer, never the prompt, and no cost (a hit costs 0)."""

    query_id: str
    final_answer: str
    processing_time: float
    quality_score: int | None
    metadata: dict[str, Any]


class CachingAnswerer:
    def __init__(self, answerer: Answerer, redis: Redis, settings: Settings) -> None:
        self._answerer = answerer
        self._redis = redis
        self._key_prefix = f"{settings.redis_key_prefix}cache:{CACHE_SCHEMA_VERSION}:"
        # Answers differ between PRSM nodes (and the embedded engine): the node is in the key.
        self._upstream = settings.prsm_api_url or "embedded"
        self._ttl_ms = max(1, round(settings.cache_ttl_seconds * 1000))
        self._timeout = settings.cache_timeout_ms / 1000
        self._outage = _OutageLog(settings.cache_outage_log_interval_seconds)
        # The questions being looked up or asked now, by key: identical ones join them.
        self._in_flight: dict[str, asyncio.Future[QueryResult]] = {}
        # Told of every Redis operation that failed or timed out (the metrics count them).
        self.on_failure: Callable[[], None] = lambda: None

    def key_for(self, query: PRSMQuery) -> str:
        """Prefix, schema version and a SHA-256 of everything that changes the answer."""
        material = {
            "upstream": self._upstream,
            "user_id": query.user_id,
            "prompt": query.prompt,
            "context_allocation": query.context_allocation,
        }
        canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return self._key_prefix + hashlib.sha256(canonical.encode()).hexdigest()

    async def query(self, query: PRSMQuery) -> QueryResult:
        if query.session_id is not None:
            # A conversation is stateful: the same words may need another answer later in it.
            return await self._answerer.query(query)
        key = self.key_for(query)
        flight = self._in_flight.get(key)
        if flight is not None:
            # The same question is being looked up or asked: share its answer.
            return _shared(await asyncio.shield(flight))
        flight = self._in_flight[key] = asyncio.get_running_loop().create_future()
        try:
            cached = await self._load(key)
        except asyncio.CancelledError:
            # This caller left during the lookup; the callers that joined it did not.
            self._fly(key, flight, self._lookup_or_answer(key, query))
            raise
        except BaseException as exc:
            self._land(key, flight, exc)
            raise
        if cached is not None:
            self._land(key, flight, cached)
            return cached
        # The call runs as a task of its own, so a caller that leaves does not cancel it for
        # the callers that joined.
        return await asyncio.shield(self._fly(key, flight, self._answer(key, query)))

    def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        # Streams pass through: a cached answer could not be replayed as the same events.
        return self._answerer.stream(query)

    async def available(self) -> bool:
        """Readiness: Redis answers within the cache timeout."""
        try:
            async with asyncio.timeout(self._timeout):
                return await redis_answers(self._redis)
        except TimeoutError:
            return False

    async def _lookup_or_answer(self, key: str, query: PRSMQuery) -> QueryResult:
        cached = await self._load(key)
        return cached if cached is not None else await self._answer(key, query)

    async def _answer(self, key: str, query: PRSMQuery) -> QueryResult:
        result = await self._answerer.query(query)
        await self._store(key, result)
        return result

    async def _load(self, key: str) -> QueryResult | None:
        stored = await self._guarded(self._redis.get(key))
        if stored is None:
            return None
        try:
            entry = CachedAnswer.model_validate_json(stored)
        except ValidationError:
            logger.warning("unreadable cache entry ignored")
            return None
        return QueryResult(
            query_id=entry.query_id,
            final_answer=entry.final_answer,
            ftns_charged=0.0,
            processing_time=entry.processing_time,
            quality_score=entry.quality_score,
            from_cache=True,
            metadata=entry.metadata,
        )

    async def _store(self, key: str, result: QueryResult) -> None:
        entry = CachedAnswer(
            query_id=result.query_id,
            final_answer=result.final_answer,
            processing_time=result.processing_time,
            quality_score=result.quality_score,
            metadata=result.metadata,
        )
        await self._guarded(self._redis.set(key, entry.model_dump_json(), px=self._ttl_ms))

    async def _guarded(self, operation: Awaitable[T]) -> T | None:
        """The operation's result, or None when Redis fails or is too slow: never an error."""
        try:
            async with asyncio.timeout(self._timeout):
                result = await operation
        except (RedisError, OSError, TimeoutError) as exc:
            self._outage.failed(exc)
            self.on_failure()
            return None
        self._outage.recovered()
        return result

    def _fly(
        self,
        key: str,
        flight: asyncio.Future[QueryResult],
        answering: Coroutine[Any, Any, QueryResult],
    ) -> asyncio.Task[QueryResult]:
        """Runs `answering` as a task whose outcome lands on `flight`."""
        task = asyncio.create_task(answering)

        def landed(done: asyncio.Task[QueryResult]) -> None:
            if done.cancelled():
                self._land(key, flight, asyncio.CancelledError())
            else:
                self._land(key, flight, done.exception() or done.result())

        task.add_done_callback(landed)
        return task

    def _land(
        self, key: str, flight: asyncio.Future[QueryResult], outcome: QueryResult | BaseException
    ) -> None:
        """Gives the callers that joined `flight` its outcome; the next caller asks anew."""
        if self._in_flight.get(key) is flight:
            del self._in_flight[key]
        if flight.done():
            return
        if isinstance(outcome, asyncio.CancelledError):
            flight.cancel()
        elif isinstance(outcome, BaseException):
            flight.set_exception(outcome)
            # Marked as seen: every caller that joined has it already, and none may have.
            flight.exception()
        else:
            flight.set_result(outcome)


def _shared(result: QueryResult) -> QueryResult:
    """Another request's answer: this caller was not charged for it."""
    return dataclasses.replace(result, ftns_charged=0.0, from_cache=True)


class _OutageLog:
    """Logs a cache outage at most once per interval, and its end once."""

    def __init__(self, interval_seconds: float) -> None:
        self._interval = interval_seconds
        self._warned_at: float | None = None
        self._failing = False

    def failed(self, exc: BaseException) -> None:
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= self._interval:
            self._warned_at = now
            logger.warning("cache unavailable, answering uncached", extra={"error": repr(exc)})
        self._failing = True

    def recovered(self) -> None:
        if self._failing:
            self._failing = False
            logger.info("cache available again")
