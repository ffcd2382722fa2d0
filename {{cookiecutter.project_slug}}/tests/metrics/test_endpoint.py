import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import app_client, query_body
from tests.metrics.scraping import scrape


async def test_serves_prometheus_text(client: httpx.AsyncClient) -> None:
    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["prsm_queries"].type == "counter"
    assert families["prsm_query_duration_seconds"].type == "histogram"
    assert families["http_request_duration_seconds"].type == "histogram"


async def test_serves_openmetrics_to_a_scraper_that_asks(client: httpx.AsyncClient) -> None:
    accept = "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5"

    response = await client.get("/metrics", headers={"Accept": accept})

    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")


async def test_is_left_out_of_the_openapi_schema(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert "/metrics" not in paths
    assert "/health" in paths


async def test_scrapes_are_not_counted(client: httpx.AsyncClient) -> None:
    for _ in range(3):
        await client.get("/metrics")

    handlers = (await scrape(client)).label_values("http_requests_total", "handler")

    assert "/metrics" not in handlers


async def test_each_app_counts_its_own_requests(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    async with app_client(settings) as (_, other_client):
        await other_client.get("/health")
        await other_client.get("/health")

        other = await scrape(other_client)
        this = await scrape(client)

    assert other.value("http_requests_total", handler="/health") == 2
    assert this.value("http_requests_total", handler="/health") == 0


class TestMetricsOff:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"metrics_enabled": False})

    async def test_metrics_is_not_found(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/metrics")

        assert response.status_code == 404

    async def test_queries_still_work(self, ai_client: httpx.AsyncClient) -> None:
        response = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))

        assert response.status_code == 200
