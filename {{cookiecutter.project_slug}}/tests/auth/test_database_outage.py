"""A database server that is down, as a PostgreSQL URL whose port nothing listens on.

(A SQLite file that cannot be opened is no outage a deployment sees, and aiosqlite's worker
thread outlives such a failed connection, so it is not the case tested here.)
"""

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import free_port


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
