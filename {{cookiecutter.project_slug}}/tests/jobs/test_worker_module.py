import runpy
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import settings_env
from tests.jobs.helpers import finished, running, submit, wait_for_job


async def test_the_broker_taskiq_worker_loads_runs_queued_jobs(
    ai_client: httpx.AsyncClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    # What `taskiq worker {{ cookiecutter.package_name }}.worker:broker` loads: the module's
    # broker, configured from the environment (here the tests' settings, and no .env).
    for name, value in settings_env(settings).items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    broker = runpy.run_module("{{ cookiecutter.package_name }}.worker")["broker"]
    job_id = await submit(ai_client, "What is 4*4?")

    async with running(broker):
        job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["result"]["answer"] == "16"
