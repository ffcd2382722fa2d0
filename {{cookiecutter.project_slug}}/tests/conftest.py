from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.helpers import app_client


@pytest.fixture
def settings() -> Settings:
    # The tests own their configuration: a developer's .env must not change what they check.
    return Settings(_env_file=None, environment="test", prsm_api_url="")


@pytest.fixture
async def app_and_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    async with app_client(settings) as started:
        yield started


@pytest.fixture
def app(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> FastAPI:
    return app_and_client[0]


@pytest.fixture
def client(app_and_client: tuple[FastAPI, httpx.AsyncClient]) -> httpx.AsyncClient:
    return app_and_client[1]


@pytest.fixture
def services(app: FastAPI) -> Services:
    services: Services = app.state.services
    return services


@pytest.fixture
def engine(services: Services) -> EmbeddedEngine:
    assert services.prsm.engine is not None
    return services.prsm.engine


@pytest.fixture
def ai_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client allowed on the /ai routes."""
    return client
