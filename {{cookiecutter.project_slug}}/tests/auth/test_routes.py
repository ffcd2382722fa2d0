import re
from pathlib import Path

import httpx
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import TEST_USER, app_client, query_body


def _ai_routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every /ai operation the app documents, as (METHOD, path)."""
    return sorted(
        (method.upper(), path)
        for path, operations in app.openapi()["paths"].items()
        if path.startswith("/ai")
        for method in operations
    )


async def test_every_ai_route_needs_a_token(app: FastAPI, client: httpx.AsyncClient) -> None:
    routes = _ai_routes(app)
    assert ("POST", "/ai/query") in routes
    assert ("POST", "/ai/stream") in routes

    for method, path in routes:
        url = re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path)
        body = query_body("What is 2+2?") if method == "POST" else None

        response = await client.request(method, url, json=body)

        assert response.status_code == 401, (method, path)
        assert response.headers["WWW-Authenticate"] == "Bearer", (method, path)


async def test_the_prsm_user_is_the_token_user(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    response = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))

    assert response.status_code == 200
    assert engine.users() == [TEST_USER]


async def test_a_body_cannot_name_another_user(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    response = await ai_client.post(
        "/ai/query", json=query_body("What is 2+2?", user_id="someone-else")
    )

    assert response.status_code == 422
    assert [error["loc"][-1] for error in response.json()["detail"]] == ["user_id"]
    assert engine.queries_answered == 0


async def test_openapi_offers_the_password_flow(client: httpx.AsyncClient) -> None:
    schema = (await client.get("/openapi.json")).json()

    schemes = schema["components"]["securitySchemes"]
    assert schemes == {
        "OAuth2PasswordBearer": {
            "type": "oauth2",
            "flows": {"password": {"scopes": {}, "tokenUrl": "/auth/token"}},
        }
    }
    for path in ("/ai/query", "/ai/stream", "/auth/me"):
        operation = next(iter(schema["paths"][path].values()))
        assert operation["security"] == [{"OAuth2PasswordBearer": []}], path


async def test_readiness_reports_a_database_without_tables(
    settings: Settings, tmp_path: Path
) -> None:
    unmigrated = settings.model_copy(
        update={"database_url": f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"}
    )
    async with app_client(unmigrated) as (_, client):
        response = await client.get("/health/ready")

    assert response.status_code == 503
    assert response.json()["checks"]["database"] == "down"
