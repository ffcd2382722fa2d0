from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.jobs.helpers import running_worker
from tests.redis_server import RedisServer, private_redis_server


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Production waits seconds between tries and a minute before taking over a silent
    # worker's job; the same behaviour at a smaller scale keeps the suite fast.
    return settings.model_copy(
        update={
            "job_max_attempts": 3,
            "job_backoff_base_seconds": 0.01,
            "job_redelivery_idle_seconds": 0.4,
        }
    )


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Services]:
    """The services of a job worker running in this process."""
    async with running_worker(settings) as services:
        yield services


@pytest.fixture
def worker_engine(worker: Services) -> EmbeddedEngine:
    """The embedded PRSM engine the worker's jobs reach (not the web app's)."""
    assert worker.engine is not None
    return worker.engine


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """Never the shared Redis: outage tests stop and restart a server only they use. Like a
    production Redis holding jobs, it comes back with the jobs it had accepted."""
    async with private_redis_server(tmp_path, persistent=True) as server:
        yield server
