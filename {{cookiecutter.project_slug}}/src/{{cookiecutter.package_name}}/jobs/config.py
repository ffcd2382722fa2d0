from pydantic import BaseModel, Field


class JobSettings(BaseModel):
    job_ttl_seconds: int = Field(
        default=24 * 3600, ge=1, description="How long a job and its result are kept."
    )
    job_max_attempts: int = Field(
        default=5, ge=1, description="Tries of a job whose PRSM failures are transient."
    )
    job_backoff_base_seconds: float = Field(
        default=1.0, ge=0, description="Wait before the second try; doubled for each next one."
    )
    job_stream: str = Field(
        default="jobs:stream",
        min_length=1,
        description="The Redis stream of queued jobs, under REDIS_KEY_PREFIX.",
    )
    job_consumer_group: str = Field(default="workers", min_length=1)
    job_redelivery_idle_seconds: float = Field(
        default=60.0,
        gt=0,
        description="A job whose worker has been silent this long is taken over by another.",
    )
    job_heartbeat_file: str = Field(
        default="",
        description="A worker keeps this file fresh while it listens (see jobs/heartbeat.py);"
        " empty for none.",
    )
