import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import httpx
import pytest
from taskiq import AsyncBroker
from taskiq.receiver import Receiver

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.worker import create_worker_broker, worker_services
from {{ cookiecutter.package_name }}.services import Services
from tests.helpers import query_body

# A bound on waiting for a job, far above what any of them takes: reaching it is a failure.
JOB_DEADLINE_SECONDS = 15.0


def running_worker(settings: Settings) -> AbstractAsyncContextManager[Services]:
    """A job worker in this process, as `taskiq worker` runs it: its own services, own engine."""
    return running(create_worker_broker(settings))


@asynccontextmanager
async def running(broker: AsyncBroker) -> AsyncIterator[Services]:
    """Runs a worker's broker as `taskiq worker` does, in this process, and stops it as a
    SIGTERM does: no new jobs, and those it has are finished first."""
    broker.is_worker_process = True
    await broker.startup()
    stop = asyncio.Event()
    listening = asyncio.create_task(
        Receiver(broker, max_async_tasks=100, run_startup=False).listen(stop)
    )
    try:
        yield worker_services(broker.state)
    finally:
        stop.set()
        await listening
        await broker.shutdown()


async def submit(client: httpx.AsyncClient, prompt: str, **fields: Any) -> str:
    response = await client.post("/ai/jobs", json=query_body(prompt, **fields))
    assert response.status_code == 202, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def wait_for_job(
    client: httpx.AsyncClient, job_id: str, done: Callable[[dict[str, Any]], bool]
) -> dict[str, Any]:
    """Polls the job until `done` holds for it."""
    body: dict[str, Any] = {}
    try:
        async with asyncio.timeout(JOB_DEADLINE_SECONDS):
            while True:
                response = await client.get(f"/ai/jobs/{job_id}")
                assert response.status_code == 200, response.text
                body = response.json()
                if done(body):
                    return body
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"job {job_id} never got there; last seen: {body}")


def finished(job: dict[str, Any]) -> bool:
    return job["status"] in ("completed", "failed")
