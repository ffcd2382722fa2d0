"""Job states as the metrics report them: queued in the web app, ended in a job worker that
serves its own metrics. The worker runs in this process, as in the job tests."""

from collections.abc import AsyncIterator

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.worker import create_worker_broker
from {{ cookiecutter.package_name }}.metrics.worker import serve_worker_metrics
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.helpers import free_port
from tests.jobs.helpers import finished, running, submit, wait_for_job
from tests.metrics.scraping import Scrape, scrape


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "job_max_attempts": 2,
            "job_backoff_base_seconds": 0.01,
            "metrics_worker_port": free_port(),
        }
    )


@pytest.fixture
async def worker(settings: Settings) -> AsyncIterator[Services]:
    broker = create_worker_broker(settings)
    serve_worker_metrics(broker)
    async with running(broker) as services:
        yield services


async def test_queued_retried_completed_and_failed_jobs(
    ai_client: httpx.AsyncClient, worker: Services, settings: Settings
) -> None:
    engine = worker.engine
    assert isinstance(engine, EmbeddedEngine)
    # The first job's first attempt meets a passing outage, the second job a refusal.
    engine.faults.fail_next, engine.faults.fail_status = 1, 503
    completed = await wait_for_job(ai_client, await submit(ai_client, "What is 1+1?"), finished)
    engine.faults.fail_next, engine.faults.fail_status = 1, 422
    failed = await wait_for_job(ai_client, await submit(ai_client, "What is 2+2?"), finished)

    web = await scrape(ai_client)
    worker_url = f"http://{settings.metrics_worker_host}:{settings.metrics_worker_port}"
    async with httpx.AsyncClient(base_url=worker_url) as client:
        jobs = Scrape.parse((await client.get("/metrics")).text)

    assert (completed["status"], failed["status"]) == ("completed", "failed")
    assert web.value("jobs_enqueued_total") == 2
    assert jobs.value("jobs_retried_total") == 1
    assert jobs.value("jobs_completed_total") == 1
    assert jobs.value("jobs_failed_total") == 1
    # The worker's PRSM calls are the worker's: the web app made none.
    assert jobs.value("prsm_queries_total", outcome="ok") == 1
    assert jobs.value("prsm_queries_total", outcome="prsm_unavailable") == 1
    assert jobs.value("prsm_queries_total", outcome="safety_violation") == 1
    assert web.value("prsm_queries_total") == 0
    job_ids = {completed["job_id"], failed["job_id"]}
    assert not any(value in job_ids for _, labels in jobs.series() for _, value in labels)
