import asyncio
import dataclasses
import uuid
{% if cookiecutter.use_auth %}
from decimal import Decimal
{% endif %}

import httpx
import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.cache.answerer import CachingAnswerer
from {{ cookiecutter.package_name }}.cache.config import CACHE_SCHEMA_VERSION
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.prsm.errors import PRSMUnavailableError
from {{ cookiecutter.package_name }}.services import Services
{% if cookiecutter.use_auth %}
from tests.auth.helpers import TEST_QUOTA, quota_left
{% endif %}
from tests.cache.helpers import cache_keys
from tests.helpers import query_body, sse_events


async def test_a_repeated_query_is_answered_from_the_cache(ai_client: httpx.AsyncClient) -> None:
    first = await ai_client.post("/ai/query", json=query_body("What is 12*12?"))
    second = await ai_client.post("/ai/query", json=query_body("What is 12*12?"))

    assert first.status_code == second.status_code == 200
    miss, hit = first.json(), second.json()
    assert miss["from_cache"] is False
    assert hit["from_cache"] is True
    assert hit["answer"] == miss["answer"] == "144"
    assert hit["query_id"] == miss["query_id"]


async def test_a_hit_makes_no_prsm_call_and_charges_nothing(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    body = query_body("What is 7*8?")
    miss = (await ai_client.post("/ai/query", json=body)).json()
    hits = [(await ai_client.post("/ai/query", json=body)).json() for _ in range(3)]

    assert miss["cost"] > 0
    assert [hit["cost"] for hit in hits] == [0, 0, 0]
    assert engine.queries_answered == 1
    balances = [float(engine.balance(user)) for user in engine.users()]
    assert balances == [pytest.approx(100 - miss["cost"])]


async def test_the_key_is_a_versioned_hash_and_the_entry_expires(
    ai_client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    await ai_client.post("/ai/query", json=query_body("What is 9*9?"))

    [key] = await cache_keys(redis, settings)
    namespace, digest = key.rsplit(":", 1)
    assert namespace == f"{settings.redis_key_prefix}cache:{CACHE_SCHEMA_VERSION}"
    assert len(digest) == 64  # a SHA-256 in hex: the prompt never appears in a key
    assert 0 < await redis.pttl(key) <= settings.cache_ttl_seconds * 1000


async def test_an_entry_is_a_miss_after_its_ttl(
    services: Services, engine: EmbeddedEngine, redis: Redis, settings: Settings
) -> None:
    short_lived = settings.model_copy(update={"cache_ttl_seconds": 0.2})
    cache = CachingAnswerer(services.prsm, redis, short_lived)
    query = PRSMQuery(user_id="alice", prompt="What is 6+6?", context_allocation=50)

    await cache.query(query)
    [key] = await cache_keys(redis, settings)
    ttl_ms = await redis.pttl(key)
    await asyncio.sleep(0.3)
    expired = await cache.query(query)

    assert ttl_ms <= 200
    assert expired.from_cache is False
    assert engine.queries_answered == 2


ORIGINAL = PRSMQuery(user_id="alice", prompt="What is 3+4?", context_allocation=50)


@pytest.mark.parametrize(
    "other",
    [
        dataclasses.replace(ORIGINAL, user_id="bob"),
        dataclasses.replace(ORIGINAL, prompt="What is 3+5?"),
        dataclasses.replace(ORIGINAL, context_allocation=60),
    ],
    ids=["another-user", "another-prompt", "another-allocation"],
)
@pytest.mark.usefixtures("askers")
async def test_a_query_differing_in_what_shapes_the_answer_is_a_miss(
    services: Services, engine: EmbeddedEngine, other: PRSMQuery
) -> None:
    # Exercised below the HTTP layer, where any user can be named whether auth is on or off.
    await services.cache.query(ORIGINAL)
    first = await services.cache.query(other)
    again = await services.cache.query(other)

    assert first.from_cache is False
    assert again.from_cache is True
    assert engine.queries_answered == 2


async def test_queries_in_a_session_are_not_cached(
    ai_client: httpx.AsyncClient, redis: Redis, settings: Settings
) -> None:
    body = query_body("What is 4*4?", session_id=str(uuid.uuid4()))

    first = await ai_client.post("/ai/query", json=body)
    second = await ai_client.post("/ai/query", json=body)

    assert first.json()["from_cache"] is False
    assert second.json()["from_cache"] is False
    assert await cache_keys(redis, settings) == []


async def test_a_session_query_is_not_answered_from_an_earlier_cached_answer(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    await ai_client.post("/ai/query", json=query_body("What is 8*8?"))

    in_session = await ai_client.post(
        "/ai/query", json=query_body("What is 8*8?", session_id=str(uuid.uuid4()))
    )

    assert in_session.json()["from_cache"] is False
    assert engine.queries_answered == 2


async def test_streams_pass_through_uncached(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine, redis: Redis, settings: Settings
) -> None:
    for _ in range(2):
        response = await ai_client.post("/ai/stream", json=query_body("What is 2*3?"))
        assert sse_events(response)[-1][0] == "end"

    assert engine.queries_answered == 2
    assert await cache_keys(redis, settings) == []


async def test_concurrent_identical_misses_make_one_prsm_call(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    engine.faults.latency_seconds = 0.05  # keeps the first call in flight while the rest arrive
    # A small allocation: with auth on, the one that calls PRSM reserves it from the quota (the
    # cache sits above the quota stage, so the 19 that join it reserve nothing).
    body = query_body("What is 5*5?", context_allocation=1)

    responses = await asyncio.gather(*(ai_client.post("/ai/query", json=body) for _ in range(20)))

    assert [response.status_code for response in responses] == [200] * 20
    bodies = [response.json() for response in responses]
    assert engine.queries_answered == 1
    assert {body["answer"] for body in bodies} == {"25"}
    # Only the request that made the call paid; the others shared its answer for nothing.
    paid = [body for body in bodies if body["cost"] > 0]
    assert len(paid) == 1
    assert paid[0]["from_cache"] is False
    assert sum(body["from_cache"] for body in bodies) == 19


@pytest.mark.usefixtures("askers")
async def test_a_failed_call_is_shared_by_its_joiners_and_not_cached(
    services: Services, engine: EmbeddedEngine
) -> None:
    # Below the HTTP layer, all five are started before the first one's call can end.
    engine.faults.fail_next = 1
    query = PRSMQuery(user_id="alice", prompt="What is 9-2?", context_allocation=50)

    failed = await asyncio.gather(
        *(services.cache.query(query) for _ in range(5)), return_exceptions=True
    )
    retried = await services.cache.query(query)

    assert [type(outcome) for outcome in failed] == [PRSMUnavailableError] * 5
    assert retried.from_cache is False
    assert retried.final_answer == "7"
{% if cookiecutter.use_auth %}


async def test_a_hit_leaves_the_quota_untouched(ai_client: httpx.AsyncClient) -> None:
    await ai_client.post("/ai/query", json=query_body("What is 6*6?"))
    after_miss = await quota_left(ai_client)

    hit = await ai_client.post("/ai/query", json=query_body("What is 6*6?"))

    assert after_miss < TEST_QUOTA
    assert hit.json()["from_cache"] is True
    assert await quota_left(ai_client) == after_miss


async def test_joiners_of_a_single_flight_leave_the_quota_untouched(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    engine.faults.latency_seconds = 0.05
    body = query_body("What is 5*6?", context_allocation=1)

    responses = await asyncio.gather(*(ai_client.post("/ai/query", json=body) for _ in range(10)))

    paid = sum(Decimal(str(response.json()["cost"])) for response in responses)
    assert engine.queries_answered == 1
    assert await quota_left(ai_client) == TEST_QUOTA - paid
{% endif %}
