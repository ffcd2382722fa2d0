"""The fixtures every test may ask for, loaded by conftest.py: the tests' settings, a started
app with its client and services, and the clean state each test starts from."""

{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
import os
import uuid
{% endif %}
{% if cookiecutter.use_auth or cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
from collections.abc import AsyncIterator, Iterator
{% else %}
from collections.abc import AsyncIterator
{% endif %}

import httpx
import pytest
from fastapi import FastAPI
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
from redis import Redis as SyncRedis
from redis.asyncio import Redis
from redis.exceptions import RedisError
{% endif %}

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
{% if cookiecutter.use_auth %}
from tests.auth.databases import TEST_DATABASE
from tests.auth.helpers import TEST_SECRET_KEY, add_user, authorized
from tests.helpers import TEST_USER, app_client
{% else %}
from tests.helpers import app_client
{% endif %}


@pytest.fixture(scope="session")
def session_settings() -> Settings:
    """The settings of the tests, read once: reading them from the environment takes some
    milliseconds, and nearly every test needs them. Tests get a copy (`settings`)."""
    # The tests own their configuration: a developer's .env must not change what they check.
    return Settings(
        _env_file=None,
        environment="test",
        prsm_api_url="",
{% if cookiecutter.use_auth %}
        database_url=TEST_DATABASE.url,
        secret_key=TEST_SECRET_KEY,
        # Cheap argon2: the tests check behaviour, not the cost of hashing.
        argon2_time_cost=1,
        argon2_memory_cost_kib=8,
        argon2_parallelism=1,
{% endif %}
    )


@pytest.fixture
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
def settings(session_settings: Settings, redis_key_prefix: str) -> Settings:
    """A copy of the tests' settings of this test's own, which it may change."""
    return session_settings.model_copy(update={"redis_key_prefix": redis_key_prefix})
{% else %}
def settings(session_settings: Settings) -> Settings:
    """A copy of the tests' settings of this test's own, which it may change."""
    return session_settings.model_copy()
{% endif %}
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}


# The shared Redis the tests run against: each test writes under its own key prefix only.
TEST_REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")


@pytest.fixture
def redis_key_prefix() -> str:
    return f"test-{uuid.uuid4().hex}:"


@pytest.fixture(scope="session")
def _test_redis() -> Iterator[SyncRedis]:
    """Fails clearly without Redis; otherwise one connection for every test's clean-up. It
    blocks, but tests are done with Redis by then, and it does not belong to a test's loop."""
    client = SyncRedis.from_url(TEST_REDIS_URL)
    try:
        try:
            client.ping()
        except (RedisError, OSError) as exc:
            pytest.fail(f"the tests need Redis at {TEST_REDIS_URL} (set REDIS_URL): {exc!r}")
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True)
def _clean_redis_keys(_test_redis: SyncRedis, redis_key_prefix: str) -> Iterator[None]:
    """Deletes every key the test wrote under its prefix."""
    yield
    keys = list(_test_redis.scan_iter(match=f"{redis_key_prefix}*", count=1000))
    if keys:
        _test_redis.delete(*keys)


@pytest.fixture
async def redis(settings: Settings) -> AsyncIterator[Redis]:
    """A client of the Redis the app under test uses, to look at what it wrote."""
    client = Redis.from_url(settings.redis_url)
    yield client
    await client.aclose()
{% endif %}
{% if cookiecutter.use_auth %}


@pytest.fixture(scope="session", autouse=True)
def _test_database() -> Iterator[None]:
    """The run's own database, migrated to head like production; dropped at the end."""
    with TEST_DATABASE.created():
        TEST_DATABASE.upgrade()
        yield


@pytest.fixture(autouse=True)
async def _empty_test_database() -> None:
    """Every test starts with no users and no failed logins."""
    await TEST_DATABASE.empty()
{% endif %}


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
    assert services.engine is not None
    return services.engine


{% if cookiecutter.use_auth %}
@pytest.fixture
async def ai_client(app: FastAPI, services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """A client allowed on the /ai routes: the test user's token, and FTNS to spend."""
    await add_user(services, TEST_USER)
    async with authorized(app, TEST_USER) as authorized_client:
        yield authorized_client
{% else %}
@pytest.fixture
def ai_client(client: httpx.AsyncClient) -> httpx.AsyncClient:
    """A client allowed on the /ai routes."""
    return client
{% endif %}
