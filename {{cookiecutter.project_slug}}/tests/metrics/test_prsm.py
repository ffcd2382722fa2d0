"""PRSM calls as the metrics report them; faults come from the embedded engine's injection."""

import asyncio

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import query_body, sse_events
from tests.metrics.scraping import Scrape, scrape


async def test_an_answered_query(ai_client: httpx.AsyncClient) -> None:
    before = await scrape(ai_client)

    response = await ai_client.post("/ai/query", json=query_body("What is 6*7?"))
    after = await scrape(ai_client)

    assert response.status_code == 200
    assert _moved(before, after, "prsm_queries_total", outcome="ok") == 1
    assert _moved(before, after, "prsm_query_duration_seconds_count") == 1
    assert _moved(before, after, "prsm_ftns_charged_total") == pytest.approx(
        response.json()["cost"]
    )
    assert after.value("prsm_queries_in_flight") == 0


@pytest.mark.parametrize(
    ("upstream_status", "outcome"),
    [(503, "prsm_unavailable"), (429, "prsm_rate_limited"), (200, "prsm_bad_gateway")],
)
async def test_a_failed_query_counts_its_error_type(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine, upstream_status: int, outcome: str
) -> None:
    engine.faults.fail_next = 1
    engine.faults.fail_status = upstream_status
    before = await scrape(ai_client)

    response = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))
    after = await scrape(ai_client)

    assert response.json()["error_type"] == outcome
    assert _moved(before, after, "prsm_queries_total", outcome=outcome) == 1
    assert _moved(before, after, "prsm_queries_total", outcome="ok") == 0
    assert _moved(before, after, "prsm_query_duration_seconds_count") == 1
    assert _moved(before, after, "prsm_ftns_charged_total") == 0
    assert after.value("prsm_queries_in_flight") == 0


async def test_a_query_refused_before_prsm_is_no_prsm_call(ai_client: httpx.AsyncClient) -> None:
    before = await scrape(ai_client)

    response = await ai_client.post("/ai/query", json=query_body(""))
    after = await scrape(ai_client)

    assert response.status_code == 422
    assert _moved(before, after, "prsm_queries_total") == 0
    assert _moved(before, after, "http_requests_total", handler="/ai/query", status="4xx") == 1


async def test_a_stream_is_counted_with_its_charge(ai_client: httpx.AsyncClient) -> None:
    before = await scrape(ai_client)

    response = await ai_client.post("/ai/stream", json=query_body("What is 12/4?"))
    after = await scrape(ai_client)

    end = sse_events(response)[-1]
    assert end[0] == "end"
    assert _moved(before, after, "prsm_queries_total", outcome="ok") == 1
    assert _moved(before, after, "prsm_ftns_charged_total") == pytest.approx(end[1]["ftns_charged"])
    assert after.value("prsm_queries_in_flight") == 0


async def test_a_failed_stream_counts_its_error_type(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    engine.faults.fail_next = 1
    engine.faults.fail_status = 503
    before = await scrape(ai_client)

    response = await ai_client.post("/ai/stream", json=query_body("What is 1+1?"))
    after = await scrape(ai_client)

    assert sse_events(response)[-1][0] == "error"
    assert _moved(before, after, "prsm_queries_total", outcome="prsm_unavailable") == 1
    assert after.value("prsm_queries_in_flight") == 0


class TestSlowPRSM:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"prsm_engine_latency_ms": 300})

    async def test_a_waiting_query_is_in_flight(self, ai_client: httpx.AsyncClient) -> None:
        query = asyncio.create_task(ai_client.post("/ai/query", json=query_body("What is 2+2?")))
        seen = set()
        while not query.done():
            seen.add((await scrape(ai_client)).value("prsm_queries_in_flight"))
            await asyncio.sleep(0.01)

        assert (await query).status_code == 200
        assert 1 in seen
        assert (await scrape(ai_client)).value("prsm_queries_in_flight") == 0


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)
