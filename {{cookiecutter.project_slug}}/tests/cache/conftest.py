from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Settings
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
