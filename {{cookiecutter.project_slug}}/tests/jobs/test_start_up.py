import os
import subprocess
import sys
from pathlib import Path

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import settings_env

# A web process as uvicorn runs it: the app, its lifespan, then one job queued.
START_THEN_QUEUE = """
import asyncio
import sys

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery


async def main() -> None:
    app = create_app()
    async with app.router.lifespan_context(app):
        print("taskiq" in sys.modules)
        query = PRSMQuery(user_id="alice", prompt="What is 2+2?")
        job = await app.state.services.jobs.submit(query, owner="alice")
        print("taskiq" in sys.modules, job.status)


asyncio.run(main())
"""


def test_a_web_process_loads_taskiq_with_its_first_job(settings: Settings, tmp_path: Path) -> None:
    # In a process of its own: this one imported taskiq long ago.
    started = subprocess.run(  # noqa: S603  # this interpreter, a fixed script
        [sys.executable, "-c", START_THEN_QUEUE],
        env={**os.environ, **settings_env(settings)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert started.returncode == 0, started.stderr
    assert started.stdout.split() == ["False", "True", "pending"]
