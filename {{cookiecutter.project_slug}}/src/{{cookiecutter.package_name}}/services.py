"""The long-lived clients of one process, opened together and closed together.

The query path is a stack of answerers: PRSM at the bottom (the embedded engine, or the HTTP
client of a node), and each enabled feature wrapping the stage below it, in the one order
`open_services` shows. The web app's lifespan and the job worker both open this.
"""

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
{% if cookiecutter.use_auth %}
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
{% endif %}

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.database import (
    open_database,
    open_database_probe,
    open_statement_pool,
    sessions_for,
)
from {{ cookiecutter.package_name }}.auth.quota import QuotaAnswerer
from {{ cookiecutter.package_name }}.auth.security import VerifiedTokens
from {{ cookiecutter.package_name }}.auth.users import RecentUsers
{% endif %}
{% if cookiecutter.use_redis_cache %}
from {{ cookiecutter.package_name }}.cache.answerer import CachingAnswerer
{% endif %}
from {{ cookiecutter.package_name }}.config import Settings
{% if cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.jobs.queue import JobQueue
{% endif %}
{% if cookiecutter.use_prometheus %}
from {{ cookiecutter.package_name }}.metrics.answerer import MeteredAnswerer
from {{ cookiecutter.package_name }}.metrics.collectors import Metrics
{% endif %}
{% if cookiecutter.use_prometheus and cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.metrics.jobs import JobMetrics
{% endif %}
{% if cookiecutter.use_prometheus and cookiecutter.use_redis_cache %}
from {{ cookiecutter.package_name }}.metrics.response_cache import MeteredCache
{% endif %}
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, Upstream
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.prsm.upstream import open_upstream
{% if cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.redis_client import open_redis, redis_answers
{% elif cookiecutter.use_redis_cache %}
from {{ cookiecutter.package_name }}.redis_client import open_redis
{% endif %}


@dataclass(frozen=True, slots=True)
class ReadinessCheck:
    name: str
    probe: Callable[[], Awaitable[bool]]
    critical: bool = True


@dataclass(frozen=True, slots=True)
class Services:
    settings: Settings
    prsm: Upstream
    answerer: Answerer
    checks: list[ReadinessCheck]
{% if cookiecutter.use_auth %}
    database: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    users: RecentUsers
    tokens: VerifiedTokens
{% endif %}
{% if cookiecutter.use_redis_cache %}
    cache: CachingAnswerer
{% endif %}
{% if cookiecutter.use_background_jobs %}
    jobs: JobQueue
{% endif %}
{% if cookiecutter.use_prometheus %}
    metrics: Metrics
{% endif %}

    @property
    def engine(self) -> EmbeddedEngine | None:
        """The embedded engine, when it is what answers (no `PRSM_API_URL`)."""
        return self.prsm if isinstance(self.prsm, EmbeddedEngine) else None


@asynccontextmanager
async def open_services(settings: Settings) -> AsyncIterator[Services]:
    async with AsyncExitStack() as stack:
        prsm = await stack.enter_async_context(open_upstream(settings))
        checks = [ReadinessCheck("prsm", prsm.ping)]
{% if cookiecutter.use_prometheus %}
        metrics = stack.enter_context(Metrics.open())
{% endif %}
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
        redis = await stack.enter_async_context(open_redis(settings))
{% endif %}
{% if cookiecutter.use_auth %}
        database = await stack.enter_async_context(open_database(settings))
        statements = await stack.enter_async_context(
            open_statement_pool(database, settings.database_pool_size)
        )
        sessions = sessions_for(database)
        database_probe = await stack.enter_async_context(open_database_probe(settings))
        checks.append(ReadinessCheck("database", database_probe))
        users = RecentUsers(sessions, settings.user_cache_seconds)
        tokens = VerifiedTokens(settings)
{% endif %}

        # The query path, from PRSM up to the caller; each stage wraps the one below it.
        answerer: Answerer = prsm
{% if cookiecutter.use_prometheus %}
        # Counts and times every call that reaches PRSM.
        answerer = MeteredAnswerer(answerer, metrics)
{% endif %}
{% if cookiecutter.use_auth %}
        # Charges what PRSM charged to the caller's quota, never more than it holds.
        quota = QuotaAnswerer(answerer, database, statements)
        quota.quota_left = users.quota_left
        answerer = quota
{% endif %}
{% if cookiecutter.use_redis_cache %}
        # Answers repeated questions from Redis: a hit costs no quota and no PRSM call.
        cache = CachingAnswerer(answerer, redis, settings)
        answerer = cache
        # Without its cache the service still answers, uncached: degraded, not down.
        checks.append(ReadinessCheck("cache", cache.available, critical=False))
{% endif %}
{% if cookiecutter.use_prometheus and cookiecutter.use_redis_cache %}
        answerer = MeteredCache(cache, metrics.registry)
{% endif %}
{% if cookiecutter.use_background_jobs %}

        jobs = await stack.enter_async_context(JobQueue.open(settings, redis))
        # Queries still work without the broker; only new jobs are refused.
        checks.append(ReadinessCheck("jobs", lambda: redis_answers(redis), critical=False))
{% endif %}
{% if cookiecutter.use_prometheus and cookiecutter.use_background_jobs %}
        jobs.on_event = JobMetrics(metrics.registry).record
{% endif %}
        yield Services(
            settings=settings,
            prsm=prsm,
            answerer=answerer,
            checks=checks,
{% if cookiecutter.use_auth %}
            database=database,
            sessions=sessions,
            users=users,
            tokens=tokens,
{% endif %}
{% if cookiecutter.use_redis_cache %}
            cache=cache,
{% endif %}
{% if cookiecutter.use_background_jobs %}
            jobs=jobs,
{% endif %}
{% if cookiecutter.use_prometheus %}
            metrics=metrics,
{% endif %}
        )


async def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]
