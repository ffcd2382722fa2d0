from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import query_body


async def test_security_headers_are_on_every_response(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"


async def test_a_body_over_the_limit_is_a_413(
    ai_client: httpx.AsyncClient, settings: Settings
) -> None:
    body = query_body("x" * settings.max_request_body_bytes)

    response = await ai_client.post("/ai/query", json=body)

    assert response.status_code == 413
    assert response.json()["error_type"] == "request_too_large"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_a_chunked_body_over_the_limit_is_a_413(
    ai_client: httpx.AsyncClient, settings: Settings
) -> None:
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(settings.max_request_body_bytes // 1024 + 2):
            yield b" " * 1024

    response = await ai_client.post(
        "/ai/query", content=chunks(), headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 413
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_cors_is_closed_by_default(client: httpx.AsyncClient) -> None:
    response = await client.options(
        "/ai/query",
        headers={"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"},
    )

    assert "access-control-allow-origin" not in response.headers


class TestCorsAllowList:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"cors_allow_origins": ["https://app.example"]})

    async def test_listed_origins_are_allowed(self, client: httpx.AsyncClient) -> None:
        response = await client.options(
            "/ai/query",
            headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )

        assert response.headers["access-control-allow-origin"] == "https://app.example"


@pytest.mark.parametrize(
    ("unsafe", "message"),
    [
        ({"debug": True}, "DEBUG must be off"),
        ({"cors_allow_origins": ["*"]}, "not '*'"),
    ],
)
def test_production_refuses_unsafe_settings(
    settings: Settings, unsafe: dict[str, object], message: str
) -> None:
    production = {**settings.model_dump(), "environment": "production", **unsafe}

    with pytest.raises(ValidationError, match=message):
        Settings.model_validate(production)


async def test_unexpected_errors_are_a_500_without_internals(app: FastAPI) -> None:
    async def broken() -> None:
        raise RuntimeError("database password is hunter2")

    app.add_api_route("/broken", broken)
    # The test client must not re-raise the server's exception, as a real client never sees it.
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.get("/broken", headers={"X-Request-ID": "req-500"})

    assert response.status_code == 500
    assert response.json() == {
        "detail": "Internal server error",
        "error_type": "internal_error",
        "request_id": "req-500",
    }
    assert response.headers["X-Request-ID"] == "req-500"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
