"""The cache as the metrics report it, against the real Redis (or, for an outage, none)."""

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import free_port, query_body
from tests.metrics.scraping import Scrape, scrape


async def test_a_miss_then_a_hit(ai_client: httpx.AsyncClient) -> None:
    before = await scrape(ai_client)

    first = await ai_client.post("/ai/query", json=query_body("What is 3*3?"))
    second = await ai_client.post("/ai/query", json=query_body("What is 3*3?"))
    after = await scrape(ai_client)

    assert (first.json()["from_cache"], second.json()["from_cache"]) == (False, True)
    assert _moved(before, after, "cache_queries_total", result="miss") == 1
    assert _moved(before, after, "cache_queries_total", result="hit") == 1
    # The hit never reached PRSM.
    assert _moved(before, after, "prsm_queries_total", outcome="ok") == 1
    assert _moved(before, after, "cache_errors_total") == 0


class TestRedisDown:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # Nothing listens there: every cache read and write is refused at once.
        return settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})

    async def test_failures_are_counted_and_queries_go_uncached(
        self, ai_client: httpx.AsyncClient
    ) -> None:
        before = await scrape(ai_client)

        responses = [
            await ai_client.post("/ai/query", json=query_body("What is 5+5?")) for _ in range(2)
        ]
        after = await scrape(ai_client)

        assert [response.status_code for response in responses] == [200, 200]
        assert _moved(before, after, "cache_queries_total", result="miss") == 2
        assert _moved(before, after, "cache_queries_total", result="hit") == 0
        # A read and a write for each query.
        assert _moved(before, after, "cache_errors_total") == 4


def _moved(before: Scrape, after: Scrape, name: str, **labels: str) -> float:
    return after.value(name, **labels) - before.value(name, **labels)
