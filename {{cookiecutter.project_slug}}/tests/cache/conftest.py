from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Settings
{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import add_user
{% endif %}
from tests.redis_server import RedisServer, private_redis_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # A generous lookup timeout: on a loaded machine a hit must not turn into a miss.
    return settings.model_copy(update={"cache_timeout_ms": 1000})


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """Never the shared Redis: outage tests stop and restart a server only they use. It
    comes back empty, which a cache may."""
    async with private_redis_server(tmp_path) as server:
        yield server
{% if cookiecutter.use_auth %}


@pytest.fixture
async def askers(services: Services) -> None:
    """The users that tests below the HTTP layer ask as. The cache sits above the quota stage
    (a hit costs no quota), so each of them needs a quota."""
    for username in ("alice", "bob"):
        await add_user(services, username)
{% else %}


@pytest.fixture
def askers() -> None:
    """The users that tests below the HTTP layer ask as: without auth, any name will do."""
{% endif %}
