import uuid

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import free_port, query_body


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Nothing listens on a port just found free: Redis, and so the job queue, is down.
    return settings.model_copy(update={"redis_url": f"redis://127.0.0.1:{free_port()}/0"})


async def test_submitting_while_the_queue_is_down_is_a_503(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/jobs", json=query_body("What is 2+2?"))

    assert response.status_code == 503
    body = response.json()
    assert body["error_type"] == "jobs_unavailable"
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert int(response.headers["Retry-After"]) > 0


async def test_polling_while_the_queue_is_down_is_a_503(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.get(f"/ai/jobs/{uuid.uuid4()}")

    assert response.status_code == 503
    assert response.json()["error_type"] == "jobs_unavailable"


async def test_readiness_reports_the_queue_degraded_and_queries_still_work(
    client: httpx.AsyncClient, ai_client: httpx.AsyncClient
) -> None:
    ready = await client.get("/health/ready")
    query = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))

    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["jobs"] == "degraded"
    assert query.status_code == 200
