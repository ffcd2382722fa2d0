from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Header, HTTPException, Request, Response, status
from fastapi.responses import JSONResponse

from {{ cookiecutter.package_name }}.errors import error_response
from {{ cookiecutter.package_name }}.jobs.dependencies import JobOwner, JobQueueDep
from {{ cookiecutter.package_name }}.jobs.queue import IdempotencyKeyReusedError, JobsUnavailableError
from {{ cookiecutter.package_name }}.jobs.schemas import JobAccepted, JobStatus
from {{ cookiecutter.package_name }}.prsm.dependencies import CallerQuery
from {{ cookiecutter.package_name }}.prsm.schemas import ErrorBody

router = APIRouter(prefix="/ai/jobs", tags=["jobs"])

# Seconds a caller is told to wait before submitting again while the queue is down.
UNAVAILABLE_RETRY_AFTER_SECONDS = 5

UNAVAILABLE: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorBody, "description": "The job queue is unavailable; see Retry-After"},
}


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=JobAccepted,
    responses={
        422: {"model": ErrorBody, "description": "Invalid input, or an Idempotency-Key reused"},
        **UNAVAILABLE,
    },
)
async def submit_job(
    query: CallerQuery,
    queue: JobQueueDep,
    owner: JobOwner,
    request: Request,
    response: Response,
    idempotency_key: Annotated[
        str | None,
        Header(
            min_length=1,
            max_length=255,
            description="Submitting again with the same key returns the same job.",
        ),
    ] = None,
) -> JobAccepted | JSONResponse:
    """Queue a query as a job and answer at once; poll `status_url` for the result."""
    try:
        job = await queue.submit(
            query, owner=owner or query.user_id, idempotency_key=idempotency_key
        )
    except JobsUnavailableError:
        return _unavailable()
    except IdempotencyKeyReusedError:
        return error_response(
            422,
            "This Idempotency-Key was already used for a different request",
            "idempotency_key_reused",
        )
    status_url = str(request.url_for("get_job", job_id=job.job_id))
    response.headers["Location"] = status_url
    return JobAccepted(job_id=job.job_id, status=job.status, status_url=status_url)


@router.get(
    "/{job_id}",
    response_model=JobStatus,
    responses={404: {"model": ErrorBody, "description": "No such job"}, **UNAVAILABLE},
)
async def get_job(job_id: UUID, queue: JobQueueDep, owner: JobOwner) -> JobStatus | JSONResponse:
    """A job's state, and its result or error once it has finished."""
    try:
        job = await queue.get(job_id, owner=owner)
    except JobsUnavailableError:
        return _unavailable()
    if job is None:
        # Someone else's job is answered like a job that does not exist.
        raise HTTPException(status.HTTP_404_NOT_FOUND, "Job not found or expired")
    return job.to_status()


def _unavailable() -> JSONResponse:
    return error_response(
        503,
        "The job queue is unavailable; try again shortly",
        "jobs_unavailable",
        {"Retry-After": str(UNAVAILABLE_RETRY_AFTER_SECONDS)},
    )
