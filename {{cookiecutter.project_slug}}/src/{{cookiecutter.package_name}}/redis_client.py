"""The one Redis connection pool of a process, shared by the features that need Redis."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from pydantic import BaseModel, Field
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError


class RedisSettings(BaseModel):
    redis_url: str = "redis://127.0.0.1:6379/0"
    redis_key_prefix: str = Field(
        default="{{ cookiecutter.project_slug }}:",
        description="Prepended to every key, so that several services can share one Redis.",
    )
    redis_socket_timeout_seconds: float = Field(default=1.0, gt=0)


def resend_once() -> Retry:
    """A pooled connection that Redis closed (it restarted, or failed over) fails the next
    command sent on it: with this retry, that command is sent once more, on a new connection."""
    return Retry(NoBackoff(), retries=1)


@asynccontextmanager
async def open_redis(settings: RedisSettings) -> AsyncIterator[Redis]:
    client = Redis.from_url(
        settings.redis_url,
        socket_timeout=settings.redis_socket_timeout_seconds,
        socket_connect_timeout=settings.redis_socket_timeout_seconds,
        health_check_interval=30,
        retry=resend_once(),
    )
    try:
        yield client
    finally:
        await client.aclose()


async def redis_answers(client: Redis) -> bool:
    try:
        return bool(await client.ping())
    except (RedisError, OSError):
        return False
