import asyncio
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs import broker
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
{% if cookiecutter.use_auth %}
from tests.auth.helpers import quota_left
{% endif %}
from tests.helpers import query_body
from tests.jobs.helpers import JOB_DEADLINE_SECONDS, finished, submit, wait_for_job
from tests.redis_server import RedisServer

PROMPTS = {"What is 2+3?": "5", "What is 4*6?": "24", "What is 9-1?": "8"}
# Long enough for every job to be seen running before PRSM answers it.
PRSM_LATENCY_SECONDS = 0.3
# Small, so that the jobs run side by side: with a quota, a job that names no allocation
# reserves all of it while it runs, and the others are refused.
ALLOCATION = 10


@pytest.fixture
def settings(settings: Settings, redis_server: RedisServer) -> Settings:
    # The app and the worker share a Redis of their own, which these tests stop and start.
    return settings.model_copy(update={"redis_url": redis_server.url})


@pytest.fixture(autouse=True)
def _prompt_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    # Production waits a second between reads of a stream it lost; the tests, a moment.
    monkeypatch.setattr(broker, "RECONNECT_DELAY_SECONDS", 0.05)


@asynccontextmanager
async def redis_stopped_while_jobs_run(
    client: httpx.AsyncClient, worker_engine: EmbeddedEngine, redis_server: RedisServer
) -> AsyncIterator[dict[str, str]]:
    """Submits jobs, and stops Redis while the worker runs them, so that PRSM answers them
    while Redis is away; after the block Redis starts again, with all it had. Yields each
    job's id and the answer it must get."""
    worker_engine.faults.latency_seconds = PRSM_LATENCY_SECONDS
    answers = {
        await submit(client, prompt, context_allocation=ALLOCATION): answer
        for prompt, answer in PROMPTS.items()
    }
    for job_id in answers:
        await wait_for_job(client, job_id, lambda job: job["status"] != "pending")
    assert worker_engine.queries_answered == 0, "a job ended before Redis stopped"
    await redis_server.stop()
    try:
        yield answers
        await answered_by_prsm(worker_engine, len(answers))
        worker_engine.faults.latency_seconds = 0
    finally:
        await redis_server.start()


async def answered_by_prsm(engine: EmbeddedEngine, count: int) -> None:
    try:
        async with asyncio.timeout(JOB_DEADLINE_SECONDS):
            while engine.queries_answered < count:  # noqa: ASYNC110  # the engine sets no event
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"PRSM answered {engine.queries_answered} of {count} jobs")


async def answered_in_time(
    request: Awaitable[httpx.Response], settings: Settings
) -> httpx.Response:
    """Nothing waits on a stopped Redis longer than the Redis socket timeout."""
    try:
        async with asyncio.timeout(settings.redis_socket_timeout_seconds):
            return await request
    except TimeoutError:
        pytest.fail(f"no answer within {settings.redis_socket_timeout_seconds} s")


async def test_jobs_running_when_redis_stops_are_done_once_when_it_is_back(
    ai_client: httpx.AsyncClient,
    client: httpx.AsyncClient,
    settings: Settings,
    worker_engine: EmbeddedEngine,
    redis_server: RedisServer,
) -> None:
    async with redis_stopped_while_jobs_run(ai_client, worker_engine, redis_server) as answers:
        refused = await answered_in_time(
            ai_client.post("/ai/jobs", json=query_body("What is 1+1?")), settings
        )
        polled = await answered_in_time(ai_client.get(f"/ai/jobs/{next(iter(answers))}"), settings)
        ready = await answered_in_time(client.get("/health/ready"), settings)
    # The same worker, never restarted, finishes them once Redis is back.
    jobs = {job_id: await wait_for_job(ai_client, job_id, finished) for job_id in answers}
    answered = worker_engine.queries_answered
    # And it reads the stream again: a job submitted now is done too.
    later = await wait_for_job(ai_client, await submit(ai_client, "What is 3*3?"), finished)

    assert refused.status_code == 503
    assert refused.json()["error_type"] == "jobs_unavailable"
    assert int(refused.headers["Retry-After"]) > 0
    assert polled.status_code == 503
    assert polled.json()["error_type"] == "jobs_unavailable"
    assert ready.status_code == 200
    assert ready.json()["status"] == "degraded"
    assert ready.json()["checks"]["jobs"] == "degraded"
    assert {job_id: job["status"] for job_id, job in jobs.items()} == dict.fromkeys(
        answers, "completed"
    )
    assert {job_id: job["result"]["answer"] for job_id, job in jobs.items()} == answers
    assert [job["attempts"] for job in jobs.values()] == [1] * len(answers)
    # PRSM answered each accepted job once, and never the refused one.
    assert answered == len(answers)
    assert later["status"] == "completed"
    assert later["result"]["answer"] == "9"
{% if cookiecutter.use_auth %}


async def test_jobs_done_after_redis_came_back_are_charged_once(
    ai_client: httpx.AsyncClient, worker_engine: EmbeddedEngine, redis_server: RedisServer
) -> None:
    before = await quota_left(ai_client)

    async with redis_stopped_while_jobs_run(ai_client, worker_engine, redis_server) as answers:
        refused = await ai_client.post("/ai/jobs", json=query_body("What is 1+1?"))
    jobs = [await wait_for_job(ai_client, job_id, finished) for job_id in answers]
    spent = before - await quota_left(ai_client)

    assert refused.status_code == 503
    # Each accepted job is charged once, and the refused one not at all.
    assert float(spent) == pytest.approx(sum(job["result"]["cost"] for job in jobs))
{% endif %}
