import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal

import httpx
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.auth.models import User
from {{ cookiecutter.package_name }}.auth.security import create_access_token, passwords_for
from {{ cookiecutter.package_name }}.auth.users import create_user, set_active
from {{ cookiecutter.package_name }}.services import Services

# Production accepts it (32 bytes or more, not an example), so production settings can be tried.
TEST_SECRET_KEY = secrets.token_urlsafe(48)
TEST_PASSWORD = "correct horse battery staple"
# As much as PRSM's welcome grant.
TEST_QUOTA = Decimal(100)


async def add_user(
    services: Services,
    username: str,
    *,
    quota: Decimal | int | str = TEST_QUOTA,
    password: str = TEST_PASSWORD,
    active: bool = True,
) -> User:
    passwords = passwords_for(services.settings)
    user = await create_user(services.sessions, passwords, username, password, Decimal(quota))
    if not active:
        await set_active(services.sessions, username, active=False)
    return user


async def login(
    client: httpx.AsyncClient, username: str, password: str = TEST_PASSWORD
) -> httpx.Response:
    return await client.post("/auth/token", data={"username": username, "password": password})


@asynccontextmanager
async def signed_in(
    app: FastAPI, username: str, password: str = TEST_PASSWORD
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the app that logged in through /auth/token and sends its bearer token."""
    async with _client(app) as client:
        response = await login(client, username, password)
        assert response.status_code == 200, response.text
        client.headers["Authorization"] = f"Bearer {response.json()['access_token']}"
        yield client


@asynccontextmanager
async def authorized(app: FastAPI, username: str) -> AsyncIterator[httpx.AsyncClient]:
    """A client with a token signed for `username` directly: it sends no login request."""
    services: Services = app.state.services
    token, _ = create_access_token(username, services.settings)
    async with _client(app) as client:
        client.headers["Authorization"] = f"Bearer {token}"
        yield client


def _client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def quota_left(client: httpx.AsyncClient) -> Decimal:
    """The signed-in user's quota, as /auth/me reports it."""
    response = await client.get("/auth/me")
    assert response.status_code == 200, response.text
    return Decimal(str(response.json()["quota"]))
