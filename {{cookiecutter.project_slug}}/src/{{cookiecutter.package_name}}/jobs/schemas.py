"""The job routes' bodies."""

from datetime import datetime
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, Field

from {{ cookiecutter.package_name }}.prsm.schemas import QueryResponse

JobState = Literal["pending", "processing", "completed", "failed"]


class JobAccepted(BaseModel):
    job_id: UUID
    status: JobState
    status_url: str = Field(description="Where to poll for the job's state and result.")


class JobError(BaseModel):
    error_type: str
    message: str


class JobStatus(BaseModel):
    job_id: UUID
    status: JobState
    result: QueryResponse | None = Field(description="The answer, once the job completed.")
    error: JobError | None = Field(description="Why the job failed, once it failed.")
    attempts: int = Field(description="Tries so far; transient PRSM failures are retried.")
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
