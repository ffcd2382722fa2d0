import asyncio
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.auth.quota import QuotaAnswerer
from {{ cookiecutter.package_name }}.auth.users import find_user
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import TEST_QUOTA, add_user, quota_left, signed_in
from tests.helpers import app_client, query_body, sse_events

# About 0.5 FTNS on the embedded engine: the prompt is counted twice (asked, then restated).
HALF_FTNS_PROMPT = "Tell me about the quiet history of lighthouses and their keepers, question {}"
# Several FTNS: more than a small quota.
COSTLY_PROMPT = " ".join(["Describe the lighthouse keepers of the northern coast."] * 40)


def _ftns(value: float) -> Decimal:
    return Decimal(str(value))


async def _quota(services: Services, username: str) -> Decimal:
    user = await find_user(services.sessions, username)
    assert user is not None
    return user.quota


async def test_a_query_costs_exactly_what_prsm_charged(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))

    cost = _ftns(response.json()["cost"])
    assert cost > 0
    assert await quota_left(ai_client) == TEST_QUOTA - cost


async def test_a_query_repeated_in_its_session_is_charged_once(
    ai_client: httpx.AsyncClient,
) -> None:
    body = query_body("What is 2+5?", session_id=str(uuid.uuid4()))

    first = await ai_client.post("/ai/query", json=body)
    again = await ai_client.post("/ai/query", json=body)

    assert first.json()["answer"] == again.json()["answer"] == "7"
    assert await quota_left(ai_client) == TEST_QUOTA - _ftns(first.json()["cost"])


async def test_a_stream_costs_what_its_end_event_says(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/stream", json=query_body("What is 12/4?"))

    end = sse_events(response)[-1]
    assert end[0] == "end"
    assert await quota_left(ai_client) == TEST_QUOTA - _ftns(end[1]["ftns_charged"])


async def test_without_quota_left_queries_get_a_429(
    app: FastAPI, services: Services, engine: EmbeddedEngine
) -> None:
    await add_user(services, "bob", quota="1")
    async with signed_in(app, "bob") as bob:
        first = await bob.post("/ai/query", json=query_body("What is 2+2?"))
        assert first.status_code == 200
        # Less than 1 FTNS is left: not enough for the smallest PRSM allocation.
        query = await bob.post("/ai/query", json=query_body("What is 2+2?"))
        stream = await bob.post("/ai/stream", json=query_body("What is 2+2?"))

    for response in (query, stream):
        assert response.status_code == 429
        body = response.json()
        assert body["detail"].startswith("FTNS quota exceeded")
        assert body["error_type"] == "quota_exceeded"
        assert body["request_id"] == response.headers["X-Request-ID"]
    assert engine.queries_answered == 1


async def test_the_allocation_is_capped_at_the_quota_left(
    app: FastAPI, services: Services, engine: EmbeddedEngine
) -> None:
    await add_user(services, "bob", quota="2")
    async with signed_in(app, "bob") as bob:
        response = await bob.post(
            "/ai/query", json=query_body(COSTLY_PROMPT, context_allocation=50)
        )

    # PRSM was asked with an allocation of 2 FTNS, not 50, and refused a dearer query.
    assert response.status_code == 402
    assert response.json()["error_type"] == "insufficient_funds"
    assert engine.queries_answered == 0
    assert await _quota(services, "bob") == 2


async def test_a_failed_query_costs_nothing(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    engine.faults.fail_next = 2

    query = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))
    stream = await ai_client.post("/ai/stream", json=query_body("What is 2+2?"))

    assert query.status_code == 503
    assert sse_events(stream)[-1][0] == "error"
    assert await quota_left(ai_client) == TEST_QUOTA


async def test_parallel_queries_never_spend_more_than_the_quota(
    app: FastAPI, services: Services, engine: EmbeddedEngine
) -> None:
    quota = Decimal(3)
    await add_user(services, "bob", quota=quota)
    # Slow answers keep the queries in flight together.
    engine.faults.latency_seconds = 0.05
    # Distinct prompts: no answer can come from a cache, each one costs PRSM.
    bodies = [query_body(HALF_FTNS_PROMPT.format(i), context_allocation=1) for i in range(20)]
    async with signed_in(app, "bob") as bob:
        responses = await asyncio.gather(*(bob.post("/ai/query", json=body) for body in bodies))

    answered = [response for response in responses if response.status_code == 200]
    refused = [response for response in responses if response.status_code == 429]
    assert answered
    assert refused
    assert len(answered) + len(refused) == 20
    costs = [_ftns(response.json()["cost"]) for response in answered]
    # Unchecked, the 20 queries would have cost several times the quota.
    assert 20 * min(costs) > 2 * quota
    spent = sum(costs, Decimal(0))
    assert spent <= quota
    assert await _quota(services, "bob") == quota - spent
    # And every answer PRSM charged for was charged to bob's quota.
    assert engine.balance("bob") == 100 - spent


async def test_queries_beyond_the_pool_size_give_every_connection_back_cleanly(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    # Two pooled connections for twenty queries at once: most statements wait for one that
    # another gives back (the pool opens none above its size; it did until the pool stopped
    # opening and closing connections under load, and this test kept those clean).
    settings.database_pool_size = 2
    bodies = [query_body(HALF_FTNS_PROMPT.format(i), context_allocation=1) for i in range(20)]
    async with app_client(settings) as (app, _):
        services: Services = app.state.services
        await add_user(services, "bob")
        async with signed_in(app, "bob") as bob:
            responses = await asyncio.gather(*(bob.post("/ai/query", json=body) for body in bodies))
            left = await quota_left(bob)

    assert [response.status_code for response in responses] == [200] * 20
    spent = sum((_ftns(response.json()["cost"]) for response in responses), Decimal(0))
    assert left == TEST_QUOTA - spent
    errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
    assert errors == []


class _CachedAnswers:
    """Stands in for the cache stage, which this project may not have: every answer is a hit."""

    def __init__(self) -> None:
        self.allocations: list[int | None] = []

    async def query(self, query: PRSMQuery) -> QueryResult:
        self.allocations.append(query.context_allocation)
        return QueryResult(
            query_id="q_cached",
            final_answer="4",
            ftns_charged=0.0,
            processing_time=0.0,
            quality_score=100,
            from_cache=True,
        )

    async def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        yield StreamEvent(type="end", final_answer="4", ftns_charged=0.0)


async def test_a_cached_answer_costs_nothing(services: Services) -> None:
    await add_user(services, "bob", quota="7.5")
    stage = _CachedAnswers()
    answerer = QuotaAnswerer(stage, services.database)

    result = await answerer.query(PRSMQuery(user_id="bob", prompt="2+2", context_allocation=50))

    assert result.from_cache
    assert stage.allocations == [7]
    assert await _quota(services, "bob") == Decimal("7.5")


async def test_a_stream_left_after_part_of_the_answer_costs_its_allocation(
    services: Services,
) -> None:
    await add_user(services, "bob", quota="10")
    answerer = QuotaAnswerer(services.prsm, services.database)
    events = answerer.stream(PRSMQuery(user_id="bob", prompt=COSTLY_PROMPT, context_allocation=9))
    assert isinstance(events, AsyncGenerator)

    assert [(await anext(events)).type for _ in range(3)] == ["start", "content", "content"]
    await events.aclose()

    assert await _quota(services, "bob") == 1


async def test_a_stream_left_before_any_answer_costs_nothing(services: Services) -> None:
    await add_user(services, "bob", quota="10")
    answerer = QuotaAnswerer(services.prsm, services.database)
    events = answerer.stream(PRSMQuery(user_id="bob", prompt=COSTLY_PROMPT, context_allocation=9))
    assert isinstance(events, AsyncGenerator)

    assert (await anext(events)).type == "start"
    await events.aclose()

    assert await _quota(services, "bob") == 10
