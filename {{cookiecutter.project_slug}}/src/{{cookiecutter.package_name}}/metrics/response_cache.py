"""Cache metrics: how the queries through the cache were answered, and its failures."""

from collections.abc import AsyncIterator

from prometheus_client import CollectorRegistry, Counter

from {{ cookiecutter.package_name }}.cache.answerer import CachingAnswerer
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent

HIT = "hit"
MISS = "miss"


class MeteredCache:
    """Right above the caching stage: reads `from_cache` off every answer it lets through, and
    has the cache report each failed Redis operation."""

    def __init__(self, cache: CachingAnswerer, registry: CollectorRegistry) -> None:
        self._cache = cache
        queries = Counter(
            "cache_queries",
            "Queries through the cache, by result: hit (answered by the cache, or by joining an"
            " identical query in flight) or miss (answered by PRSM).",
            ["result"],
            registry=registry,
        )
        errors = Counter(
            "cache_errors",
            "Cache reads and writes that failed or timed out: the query went uncached.",
            registry=registry,
        )
        # Both children made now, so that /metrics shows them at 0, and found once: `labels()`
        # takes a lock and builds a key.
        self._hits = queries.labels(HIT)
        self._misses = queries.labels(MISS)
        cache.on_failure = errors.inc

    async def query(self, query: PRSMQuery) -> QueryResult:
        result = await self._cache.query(query)
        (self._hits if result.from_cache else self._misses).inc()
        return result

    def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        # Streams are never cached: counted as PRSM calls only.
        return self._cache.stream(query)
