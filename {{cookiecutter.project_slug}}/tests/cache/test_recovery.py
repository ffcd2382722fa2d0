import asyncio

import httpx
import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.helpers import query_body
from tests.redis_server import RedisServer

TIMEOUT_MS = 250


@pytest.fixture
def settings(settings: Settings, redis_server: RedisServer) -> Settings:
    # The app's Redis is a private server, which these tests stop, restart or stall. Its socket
    # timeout is long, so that only the cache's own timeout can cut a stalled lookup short.
    update = {
        "redis_url": redis_server.url,
        "redis_socket_timeout_seconds": 10.0,
        "cache_timeout_ms": TIMEOUT_MS,
    }
    return settings.model_copy(update=update)


async def _from_cache(client: httpx.AsyncClient, prompt: str) -> bool:
    response = await client.post("/ai/query", json=query_body(prompt))
    assert response.status_code == 200
    from_cache: bool = response.json()["from_cache"]
    return from_cache


async def test_caching_resumes_when_redis_comes_back(
    ai_client: httpx.AsyncClient,
    services: Services,
    engine: EmbeddedEngine,
    redis_server: RedisServer,
) -> None:
    before = [await _from_cache(ai_client, "What is 10*10?") for _ in range(2)]

    await redis_server.stop()
    during = [await _from_cache(ai_client, "What is 10*10?") for _ in range(2)]
    readiness = (await ai_client.get("/health/ready")).json()

    await redis_server.start()
    for _ in range(500):
        if await services.cache.available():
            break
        await asyncio.sleep(0.02)
    else:
        pytest.fail("the cache did not reconnect to the restarted Redis within 10 s")
    # The restarted server is empty: one miss stores the answer again, then it is served.
    after = [await _from_cache(ai_client, "What is 10*10?") for _ in range(2)]

    assert before == [False, True]
    assert during == [False, False]
    assert readiness["checks"]["cache"] == "degraded"
    assert after == [False, True]
    assert engine.queries_answered == 4


async def test_a_stalled_redis_is_waited_for_only_up_to_the_timeout(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine, redis_server: RedisServer
) -> None:
    assert [await _from_cache(ai_client, "What is 11*11?") for _ in range(2)] == [False, True]
    admin = Redis.from_url(redis_server.url)
    # Redis holds every client's commands for longer than the cache is willing to wait: the
    # lookup gives up and the query is answered uncached, although the answer is stored.
    await admin.client_pause(TIMEOUT_MS * 8, all=True)
    await admin.aclose()

    stalled = await _from_cache(ai_client, "What is 11*11?")

    assert stalled is False
    assert engine.queries_answered == 2
