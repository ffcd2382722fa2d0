import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import free_port, query_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Nothing listens on this port: Redis refuses every connection.
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    return settings.model_copy(update={"redis_url": unreachable, "cache_timeout_ms": 50})


async def test_queries_are_answered_uncached_while_redis_is_unreachable(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    responses = [
        await ai_client.post("/ai/query", json=query_body("What is 2+3?")) for _ in range(3)
    ]

    assert [response.status_code for response in responses] == [200] * 3
    assert [response.json()["from_cache"] for response in responses] == [False] * 3
    assert all(response.json()["cost"] > 0 for response in responses)
    assert engine.queries_answered == 3
    warnings = [
        record
        for record in caplog.records
        if record.getMessage() == "cache unavailable, answering uncached"
    ]
    assert len(warnings) == 1  # once per interval, not once per request
    assert warnings[0].levelno == logging.WARNING


async def test_readiness_reports_the_cache_degraded_not_down(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["cache"] == "degraded"
    assert body["checks"]["prsm"] == "ok"
