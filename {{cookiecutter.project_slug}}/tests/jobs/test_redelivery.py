import httpx
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.broker import create_broker
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
from tests.jobs.helpers import finished, running_worker, submit, wait_for_job


async def test_a_job_whose_worker_stopped_before_acknowledging_is_done_by_another(
    ai_client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await submit(ai_client, "What is 7*8?")
    # A worker takes the job off the stream, then dies: it never acknowledges it.
    dead_worker = create_broker(settings)
    await dead_worker.startup()
    deliveries = dead_worker.listen()
    taken = await anext(deliveries)
    await deliveries.aclose()
    await dead_worker.shutdown()
    assert job_id.encode() in taken.data

    async with running_worker(settings) as survivor:
        job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["result"]["answer"] == "56"
    assert survivor.engine is not None
    assert survivor.engine.queries_answered == 1


async def test_a_job_running_longer_than_the_idle_time_is_not_taken_over(
    ai_client: httpx.AsyncClient, settings: Settings
) -> None:
    async with running_worker(settings) as first:
        first_engine = _engine(first.engine)
        # Slower than the idle time after which a silent worker's job is taken over.
        first_engine.faults.latency_seconds = 1.5 * settings.job_redelivery_idle_seconds
        job_id = await submit(ai_client, "What is 9*9?")
        await wait_for_job(ai_client, job_id, lambda job: job["status"] == "processing")
        async with running_worker(settings) as second:
            job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["attempts"] == 1
    assert first_engine.queries_answered == 1
    assert _engine(second.engine).queries_answered == 0


async def test_a_worker_goes_on_after_redis_lost_the_stream(
    ai_client: httpx.AsyncClient, settings: Settings, worker: Services, redis: Redis
) -> None:
    # What a Redis restarted without its data looks like to a running worker.
    await redis.delete(create_broker(settings).queue_name)

    job_id = await submit(ai_client, "What is 3+4?")
    job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["result"]["answer"] == "7"


def _engine(engine: EmbeddedEngine | None) -> EmbeddedEngine:
    assert engine is not None
    return engine
