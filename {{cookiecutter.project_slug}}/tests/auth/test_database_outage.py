"""A database server that is down: a PostgreSQL URL whose port nothing listens on, and the
run's PostgreSQL server cut off mid-run and back again.

(A SQLite file that cannot be opened is no outage a deployment sees, and aiosqlite's worker
thread outlives such a failed connection, so it is not the case tested here.)
"""

from collections.abc import AsyncIterator
from decimal import Decimal

import httpx
import pytest
from sqlalchemy import make_url

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.databases import TEST_DATABASE
from tests.auth.helpers import add_user, login, quota_left
from tests.auth.relay import TcpRelay
from tests.helpers import free_port, query_body


class TestUnreachableDatabase:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        unreachable = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/test"
        return settings.model_copy(update={"database_url": unreachable})

    async def test_login_is_a_503_with_retry_after(self, client: httpx.AsyncClient) -> None:
        response = await client.post(
            "/auth/token", data={"username": "alice", "password": "a long enough password"}
        )

        assert response.status_code == 503
        assert response.json()["error_type"] == "database_unavailable"
        assert response.headers["Retry-After"] == "5"
        assert "127.0.0.1" not in response.text

    async def test_readiness_reports_the_database_down(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")

        assert response.status_code == 503
        assert response.json()["checks"]["database"] == "down"


@pytest.fixture
async def relay() -> AsyncIterator[TcpRelay]:
    """The way from the app to the run's PostgreSQL server, which a test may cut."""
    if not TEST_DATABASE.on_postgresql:
        pytest.skip("needs a database server: DATABASE_URL names SQLite in this run")
    server = make_url(TEST_DATABASE.url)
    relay = TcpRelay(free_port(), server.host or "127.0.0.1", server.port or 5432)
    await relay.start()
    yield relay
    await relay.stop()


class TestDatabaseComingBack:
    @pytest.fixture
    def settings(self, settings: Settings, relay: TcpRelay) -> Settings:
        url = make_url(TEST_DATABASE.url).set(host="127.0.0.1", port=relay.port)
        return settings.model_copy(
            update={"database_url": url.render_as_string(hide_password=False)}
        )

    async def test_the_service_recovers_and_charges_nothing_twice(
        self,
        client: httpx.AsyncClient,
        ai_client: httpx.AsyncClient,
        services: Services,
        engine: EmbeddedEngine,
        relay: TcpRelay,
    ) -> None:
        await add_user(services, "bob")
        answered = await ai_client.post("/ai/query", json=query_body("What is 2+3?"))
        quota_before = await quota_left(ai_client)

        await relay.stop()
        login_during = await login(client, "bob")
        query_during = await ai_client.post("/ai/query", json=query_body("What is 3+4?"))
        ready_during = await client.get("/health/ready")

        await relay.start()
        login_after = await login(client, "bob")
        query_after = await ai_client.post("/ai/query", json=query_body("What is 3+4?"))
        ready_after = await client.get("/health/ready")
        quota_after = await quota_left(ai_client)

        assert answered.status_code == 200
        assert login_during.status_code == 503
        assert login_during.json()["error_type"] == "database_unavailable"
        assert query_during.status_code == 503
        assert ready_during.json()["checks"]["database"] == "down"
        assert login_after.status_code == 200
        assert query_after.status_code == 200
        assert ready_after.json()["checks"]["database"] == "ok"
        # The refused query never reached PRSM, and only the answered one was charged.
        assert engine.queries_answered == 2
        assert quota_after == quota_before - Decimal(str(query_after.json()["cost"]))
