import uuid
from datetime import datetime

import httpx
import pytest
{% if cookiecutter.use_auth %}
from fastapi import FastAPI
{% endif %}
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from {{ cookiecutter.package_name }}.services import Services
{% if cookiecutter.use_auth %}
from tests.auth.helpers import add_user, quota_left, signed_in
{% endif %}
from tests.helpers import query_body
from tests.jobs.helpers import finished, running_worker, submit, wait_for_job


async def test_a_submitted_job_is_pending_with_a_url_to_poll(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/jobs", json=query_body("What is 2+2?"))

    assert response.status_code == 202
    accepted = response.json()
    assert accepted["status"] == "pending"
    assert accepted["status_url"].endswith(f"/ai/jobs/{accepted['job_id']}")
    assert response.headers["Location"] == accepted["status_url"]
    job = (await ai_client.get(accepted["status_url"])).json()
    assert job["status"] == "pending"
    assert job["result"] is job["error"] is job["started_at"] is None
    assert datetime.fromisoformat(job["created_at"])


async def test_a_job_is_processed_then_completed_with_the_answer(
    ai_client: httpx.AsyncClient, worker_engine: EmbeddedEngine, engine: EmbeddedEngine
) -> None:
    # PRSM takes a moment, so the job is seen while it runs.
    worker_engine.faults.latency_seconds = 0.3
    job_id = await submit(ai_client, "What is 6*7?")

    running = await wait_for_job(ai_client, job_id, lambda job: job["status"] != "pending")
    done = await wait_for_job(ai_client, job_id, finished)

    assert running["status"] == "processing"
    assert running["started_at"] is not None
    assert running["result"] is None
    assert done["status"] == "completed"
    assert done["result"]["answer"] == "42"
    assert done["result"]["cost"] > 0
    assert done["error"] is None
    assert done["attempts"] == 1
    assert done["started_at"] <= done["completed_at"]
    # The worker asked PRSM, not the web process.
    assert (worker_engine.queries_answered, engine.queries_answered) == (1, 0)


async def test_a_job_queued_while_no_worker_runs_is_done_when_one_starts(
    ai_client: httpx.AsyncClient, settings: Settings
) -> None:
    job_id = await submit(ai_client, "What is 1+2?")

    async with running_worker(settings):
        job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["result"]["answer"] == "3"


@pytest.mark.usefixtures("worker")
async def test_a_permanent_failure_fails_at_once_with_the_reason(
    ai_client: httpx.AsyncClient,
) -> None:
    # No query costs nothing: PRSM refuses it, and asking again would not help.
    job_id = await submit(ai_client, "What is 2+2?", context_allocation=0)

    job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "failed"
    assert job["error"]["error_type"] == "insufficient_funds"
    assert job["error"]["message"]
    assert job["attempts"] == 1
    assert job["result"] is None
    assert job["completed_at"] is not None


async def test_transient_failures_are_retried_until_the_job_completes(
    ai_client: httpx.AsyncClient, worker_engine: EmbeddedEngine
) -> None:
    worker_engine.faults.fail_next = 2
    worker_engine.faults.fail_status = 503

    job_id = await submit(ai_client, "What is 5*5?")
    job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert job["result"]["answer"] == "25"
    assert job["attempts"] == 3
    assert worker_engine.queries_answered == 1


async def test_a_job_fails_when_its_attempts_are_used_up(
    ai_client: httpx.AsyncClient, worker_engine: EmbeddedEngine, settings: Settings
) -> None:
    worker_engine.faults.fail_next = 100
    worker_engine.faults.fail_status = 503

    job_id = await submit(ai_client, "What is 5*5?")
    job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "failed"
    assert job["error"]["error_type"] == "prsm_unavailable"
    assert f"after {settings.job_max_attempts} attempts" in job["error"]["message"]
    assert job["attempts"] == settings.job_max_attempts


async def test_an_unknown_job_is_a_404(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.get(f"/ai/jobs/{uuid.uuid4()}")

    assert response.status_code == 404
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_a_job_id_that_is_not_a_uuid_is_a_422(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.get("/ai/jobs/not-a-job")

    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "job_id"]


async def test_a_job_is_forgotten_after_its_ttl(
    ai_client: httpx.AsyncClient, settings: Settings, services: Services, redis: Redis
) -> None:
    job_id = await submit(ai_client, "What is 2+2?")
    record = services.jobs.record_key(uuid.UUID(job_id))

    assert 0 < await redis.ttl(record) <= settings.job_ttl_seconds
    await redis.delete(record)  # what expiry does, without waiting a day
    assert (await ai_client.get(f"/ai/jobs/{job_id}")).status_code == 404


async def test_invalid_input_is_refused_before_queueing(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/jobs", json=query_body(""))

    assert response.status_code == 422
    assert response.json()["error_type"] == "validation_error"


async def test_the_same_idempotency_key_returns_the_same_job(
    ai_client: httpx.AsyncClient,
) -> None:
    body = query_body("What is 3*3?")

    first = await ai_client.post("/ai/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    again = await ai_client.post("/ai/jobs", json=body, headers={"Idempotency-Key": "k-1"})
    other = await ai_client.post("/ai/jobs", json=body, headers={"Idempotency-Key": "k-2"})
    unkeyed = [(await ai_client.post("/ai/jobs", json=body)).json()["job_id"] for _ in range(2)]

    assert first.status_code == again.status_code == 202
    assert again.json()["job_id"] == first.json()["job_id"]
    assert other.json()["job_id"] != first.json()["job_id"]
    assert len(set(unkeyed)) == 2


async def test_an_idempotency_key_reused_for_another_request_is_a_422(
    ai_client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": "k-1"}
    await ai_client.post("/ai/jobs", json=query_body("What is 3*3?"), headers=headers)

    response = await ai_client.post("/ai/jobs", json=query_body("What is 4*4?"), headers=headers)

    assert response.status_code == 422
    assert response.json()["error_type"] == "idempotency_key_reused"
{% if cookiecutter.use_auth %}


async def test_a_job_is_charged_to_its_submitters_quota_when_it_runs(
    ai_client: httpx.AsyncClient, worker: Services
) -> None:
    before = await quota_left(ai_client)

    job_id = await submit(ai_client, "What is 2+2?")
    job = await wait_for_job(ai_client, job_id, finished)

    assert job["status"] == "completed"
    assert float(before - await quota_left(ai_client)) == pytest.approx(job["result"]["cost"])


async def test_another_users_job_is_a_404(
    ai_client: httpx.AsyncClient, app: FastAPI, services: Services
) -> None:
    job_id = await submit(ai_client, "What is 2+2?")
    await add_user(services, "bob")

    async with signed_in(app, "bob") as bob:
        response = await bob.get(f"/ai/jobs/{job_id}")

    assert response.status_code == 404


async def test_jobs_need_a_token(client: httpx.AsyncClient, ai_client: httpx.AsyncClient) -> None:
    job_id = await submit(ai_client, "What is 2+2?")

    submitted = await client.post("/ai/jobs", json=query_body("What is 2+2?"))
    polled = await client.get(f"/ai/jobs/{job_id}")

    assert submitted.status_code == polled.status_code == 401


async def test_idempotency_keys_are_per_user(
    ai_client: httpx.AsyncClient, app: FastAPI, services: Services
) -> None:
    body, headers = query_body("What is 3*3?"), {"Idempotency-Key": "k-1"}
    await add_user(services, "bob")

    mine = await ai_client.post("/ai/jobs", json=body, headers=headers)
    async with signed_in(app, "bob") as bob:
        theirs = await bob.post("/ai/jobs", json=body, headers=headers)

    assert theirs.status_code == 202
    assert theirs.json()["job_id"] != mine.json()["job_id"]
{% endif %}
