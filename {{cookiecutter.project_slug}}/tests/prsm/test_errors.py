"""Every upstream error class of the protocol's mapping table, as the service's caller sees it.

The faults come from the embedded engine's fault injection. Each test runs twice: with the
engine answering in-process, as a service without PRSM_API_URL has it, and with the same
engine served as a node on a local port, through the HTTP client.
"""

from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.helpers import app_client, free_port, query_body, serve


@pytest.fixture(params=["in-process", "over-http"])
async def node(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[EmbeddedEngine, str] | None]:
    """None in-process; over HTTP, the engine (faults as the settings say) and its address."""
    if request.param == "in-process":
        yield None
        return
    engine = EmbeddedEngine.from_settings(settings)
    async with serve(engine.app) as url:
        yield engine, url


@pytest.fixture
async def app_and_client(
    settings: Settings, node: tuple[EmbeddedEngine, str] | None
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    if node is not None:
        settings = settings.model_copy(update={"prsm_api_url": node[1]})
    async with app_client(settings) as started:
        yield started


@pytest.fixture
def engine(services: Services, node: tuple[EmbeddedEngine, str] | None) -> EmbeddedEngine:
    """The engine that answers, in-process or as the node."""
    engine = services.engine if node is None else node[0]
    assert engine is not None
    return engine


@pytest.mark.parametrize(
    ("upstream_status", "status", "error_type"),
    [
        (401, 502, "prsm_bad_gateway"),
        (422, 422, "safety_violation"),
        (429, 429, "prsm_rate_limited"),
        (501, 503, "prsm_unavailable"),
        (503, 503, "prsm_unavailable"),
        (500, 502, "prsm_bad_gateway"),
        (200, 502, "prsm_bad_gateway"),
    ],
)
async def test_upstream_errors_are_mapped(
    ai_client: httpx.AsyncClient,
    engine: EmbeddedEngine,
    upstream_status: int,
    status: int,
    error_type: str,
) -> None:
    engine.faults.fail_next = 1
    engine.faults.fail_status = upstream_status

    response = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))
    # The fault was PRSM's one answer: the next question is answered as usual.
    recovered = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))

    assert response.status_code == status
    body = response.json()
    assert body["error_type"] == error_type
    assert body["request_id"] == response.headers["X-Request-ID"]
    if status in (429, 503):
        assert int(response.headers["Retry-After"]) >= 1
    assert recovered.status_code == 200
    assert recovered.json()["answer"] == "2"


async def test_insufficient_funds_is_a_402(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post(
        "/ai/query", json=query_body("What is 1+1?", context_allocation=0)
    )

    assert response.status_code == 402
    assert response.json()["error_type"] == "insufficient_funds"


class TestSlowPRSM:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        # A timeout a busy machine's round trip to the node stays well within (at 0.05 s,
        # under load, the recovered query timed out too).
        return settings.model_copy(
            update={"prsm_engine_latency_ms": 1_000, "prsm_timeout_seconds": 0.3}
        )

    async def test_is_a_504_until_prsm_is_fast_again(
        self, ai_client: httpx.AsyncClient, engine: EmbeddedEngine
    ) -> None:
        response = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))
        engine.faults.latency_seconds = 0
        recovered = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))

        assert response.status_code == 504
        assert response.json()["error_type"] == "prsm_timeout"
        assert recovered.status_code == 200


class TestUnreachablePRSM:
    @pytest.fixture
    def node(self) -> None:
        """Over HTTP already, to a port that nothing listens on (yet)."""

    @pytest.fixture
    def node_port(self) -> int:
        return free_port()

    @pytest.fixture
    def settings(self, settings: Settings, node_port: int) -> Settings:
        return settings.model_copy(update={"prsm_api_url": f"http://127.0.0.1:{node_port}"})

    async def test_is_a_503_with_retry_after(
        self, ai_client: httpx.AsyncClient, settings: Settings
    ) -> None:
        response = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))

        assert response.status_code == 503
        assert response.json()["error_type"] == "prsm_unavailable"
        retry_after = settings.prsm_unavailable_retry_after_seconds
        assert response.headers["Retry-After"] == str(retry_after)

    async def test_makes_the_service_unready(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")

        assert response.status_code == 503
        assert response.json()["checks"]["prsm"] == "down"

    async def test_queries_are_answered_once_the_node_is_up(
        self, ai_client: httpx.AsyncClient, node_port: int
    ) -> None:
        before = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))
        async with serve(EmbeddedEngine().app, port=node_port):
            after = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))
            ready = await ai_client.get("/health/ready")

        assert before.status_code == 503
        assert after.status_code == 200
        assert after.json()["answer"] == "2"
        assert ready.json()["checks"]["prsm"] == "ok"
