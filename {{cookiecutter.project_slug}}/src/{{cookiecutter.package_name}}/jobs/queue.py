"""Jobs: their records in Redis, submitting them to the stream, and running them to an end.

A job's record is a Redis hash under REDIS_KEY_PREFIX that expires JOB_TTL_SECONDS after
submission. The stream carries only its id; the prompt stays in the record.
"""

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self, TypeVar
from uuid import UUID, uuid4

from pydantic import BaseModel, Json
from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import EqualJitterBackoff
from redis.exceptions import RedisError

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.schemas import JobError, JobState, JobStatus
from {{ cookiecutter.package_name }}.logs import request_id_var
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery
from {{ cookiecutter.package_name }}.prsm.errors import (
    TRANSIENT_ERRORS,
    PRSMError,
    PRSMRateLimitError,
)
from {{ cookiecutter.package_name }}.prsm.schemas import QueryResponse

if TYPE_CHECKING:
    from taskiq.kicker import AsyncKicker

    from {{ cookiecutter.package_name }}.jobs.broker import JobBroker

logger = logging.getLogger(__name__)

T = TypeVar("T")

# A worker running a job rides out a Redis restart or failover: its reads and writes of the
# job's record are tried again after a lost connection, backing off to about one try a second,
# for about half a minute. Otherwise a job whose answer came while Redis was away would run
# again when redelivered, and one whose first read met a connection Redis had closed would
# fail, and taskiq acknowledges a task that failed: the job would never run. The web process
# does not wait: it answers 503 at once.
_WORKER_RETRY = Retry(EqualJitterBackoff(cap=1.0, base=0.05), retries=40)

# KEYS: the job's record, then its idempotency key if any. ARGV: job id, ttl, field, value...
# Returns the id of the job the caller gets: the new one, or the one the key already names.
_CREATE = """
if KEYS[2] then
    local existing = redis.call('GET', KEYS[2])
    if existing then return existing end
    redis.call('SET', KEYS[2], ARGV[1], 'EX', ARGV[2])
end
redis.call('HSET', KEYS[1], unpack(ARGV, 3))
redis.call('EXPIRE', KEYS[1], ARGV[2])
return ARGV[1]
"""
# KEYS: the job's record. ARGV: the time now. Returns the attempt number, or 0 when the job
# expired or has already finished (a duplicate delivery).
_BEGIN_ATTEMPT = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'completed' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[1], 'status', 'processing')
redis.call('HSETNX', KEYS[1], 'started_at', ARGV[1])
return redis.call('HINCRBY', KEYS[1], 'attempts', 1)
"""
# KEYS: the job's record. ARGV: field, value... The first outcome stays (a job that ran twice
# keeps the one its caller may have seen already), and an expired record stays expired.
# Returns 1 when it recorded the outcome, else 0.
_FINISH = """
local status = redis.call('HGET', KEYS[1], 'status')
if not status or status == 'completed' or status == 'failed' then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV))
return 1
"""


# What happens to jobs, as the metrics count it.
JobEvent = Literal["enqueued", "completed", "failed", "retried"]


class JobsUnavailableError(Exception):
    """The job store or its stream cannot be reached."""


class IdempotencyKeyReusedError(Exception):
    """An Idempotency-Key already names a job submitted with a different request."""


class StoredQuery(BaseModel):
    user_id: str
    prompt: str
    context_allocation: int | None = None
    session_id: UUID | None = None
    request_id: str | None = None

    @classmethod
    def of(cls, query: PRSMQuery) -> Self:
        return cls(
            user_id=query.user_id,
            prompt=query.prompt,
            context_allocation=query.context_allocation,
            session_id=query.session_id,
            request_id=query.request_id,
        )

    def to_query(self) -> PRSMQuery:
        return PRSMQuery(**self.model_dump())

    def fingerprint(self) -> str:
        """Tells apart two submissions that ask different things."""
        return hashlib.sha256(self.model_dump_json(exclude={"request_id"}).encode()).hexdigest()


class JobRecord(BaseModel):
    """A job as its Redis hash holds it, where every value is a string."""

    job_id: UUID
    status: JobState
    owner: str
    fingerprint: str
    query: Json[StoredQuery]
    attempts: int = 0
    result: Json[QueryResponse] | None = None
    error: Json[JobError] | None = None
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None

    def to_status(self) -> JobStatus:
        return JobStatus.model_validate(self.model_dump(exclude={"owner", "fingerprint", "query"}))


class JobQueue:
    def __init__(self, redis: Redis, settings: Settings) -> None:
        self._redis = redis
        self._settings = settings
        self._broker: JobBroker | None = None
        self._kicker: AsyncKicker[[str], None] | None = None
        self._prefix = f"{settings.redis_key_prefix}jobs:"
        self._ttl_seconds = settings.job_ttl_seconds
        self._max_attempts = settings.job_max_attempts
        self._backoff_base_seconds = settings.job_backoff_base_seconds
        self._create = redis.register_script(_CREATE)
        self._begin_attempt = redis.register_script(_BEGIN_ATTEMPT)
        self._finish = redis.register_script(_FINISH)
        # Told of each job queued, completed, failed or retried (the metrics count them).
        self.on_event: Callable[[JobEvent], None] = lambda event: None

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: Settings, redis: Redis) -> AsyncIterator[Self]:
        """Connects lazily: the service starts, and answers 503 for jobs, while Redis is down."""
        queue = cls(redis, settings)
        try:
            yield queue
        finally:
            if queue._broker is not None:
                await queue._broker.shutdown()

    def record_key(self, job_id: UUID) -> str:
        return f"{self._prefix}job:{job_id}"

    async def _send(self, job_id: UUID) -> None:
        """Puts the job's id on the stream. taskiq, and aiohttp with it, is imported with the
        first job rather than at start-up: a tenth of a second or more of every web process's
        start, and a worker has a broker of its own."""
        from taskiq.exceptions import SendTaskError
        from taskiq.kicker import AsyncKicker

        from {{ cookiecutter.package_name }}.jobs.broker import RUN_JOB, create_broker

        if self._kicker is None:
            self._broker = create_broker(self._settings)
            self._kicker = AsyncKicker(RUN_JOB, self._broker, labels={})
        try:
            await self._kicker.kiq(str(job_id))
        except (SendTaskError, RedisError, OSError) as exc:
            raise JobsUnavailableError from exc

    async def submit(
        self, query: PRSMQuery, *, owner: str, idempotency_key: str | None = None
    ) -> JobRecord:
        """Stores a pending job and queues it; with a key already used, returns that job."""
        stored = StoredQuery.of(query)
        job = JobRecord.model_validate(
            {
                "job_id": uuid4(),
                "status": "pending",
                "owner": owner,
                "fingerprint": stored.fingerprint(),
                "query": stored.model_dump_json(),
                "created_at": datetime.now(UTC),
            }
        )
        keys = [self.record_key(job.job_id)]
        if idempotency_key is not None:
            scoped = f"{owner}\0{idempotency_key}".encode()
            keys.append(f"{self._prefix}idempotency:{hashlib.sha256(scoped).hexdigest()}")
        fields = _hash_fields(job.model_dump(mode="json", round_trip=True, exclude_none=True))
        try:
            chosen = await self._create(
                keys=keys, args=[str(job.job_id), self._ttl_seconds, *fields]
            )
        except (RedisError, OSError) as exc:
            raise JobsUnavailableError from exc
        if UUID(chosen.decode()) != job.job_id:
            existing = await self.get(UUID(chosen.decode()))
            if existing is None:
                raise JobsUnavailableError("the job named by the idempotency key vanished")
            if existing.fingerprint != job.fingerprint:
                raise IdempotencyKeyReusedError
            return existing
        try:
            await self._send(job.job_id)
        except JobsUnavailableError:
            # Not queued, so not kept: a retry with the same key must be able to queue it.
            with suppress(RedisError, OSError):
                await self._redis.delete(*keys)
            raise
        self.on_event("enqueued")
        return job

    async def get(self, job_id: UUID, *, owner: str | None = None) -> JobRecord | None:
        """The job, or None when it is unknown, expired or (given an owner) someone else's."""
        try:
            job = await self._read(job_id)
        except (RedisError, OSError) as exc:
            raise JobsUnavailableError from exc
        if job is None or (owner is not None and job.owner != owner):
            return None
        return job

    async def _read(self, job_id: UUID) -> JobRecord | None:
        raw = await self._redis.hgetall(self.record_key(job_id))
        if not raw:
            return None
        return JobRecord.model_validate({_text(key): _text(value) for key, value in raw.items()})

    async def run(self, job_id: UUID, answerer: Answerer) -> None:
        """Runs a delivered job to its end: completed, or failed with the reason recorded."""
        job = await self._retried(lambda: self._read(job_id))
        if job is None:
            logger.warning("job expired before it ran", extra={"job_id": str(job_id)})
            return
        token = request_id_var.set(job.query.request_id or "-")
        try:
            await self._attempt_until_done(job, answerer)
        finally:
            request_id_var.reset(token)

    async def _attempt_until_done(self, job: JobRecord, answerer: Answerer) -> None:
        key = self.record_key(job.job_id)
        query = job.query.to_query()
        while True:
            attempt = int(
                await self._retried(lambda: self._begin_attempt(keys=[key], args=[_now()]))
            )
            if attempt == 0:
                return
            if attempt > self._max_attempts:
                # Its workers kept stopping while running it.
                message = f"Gave up after {self._max_attempts} attempts"
                await self._fail(job, JobError(error_type="attempts_exhausted", message=message))
                return
            try:
                result = await answerer.query(query)
            except TRANSIENT_ERRORS as exc:
                if attempt >= self._max_attempts:
                    message = f"{exc.message} (gave up after {attempt} attempts)"
                    await self._fail(job, JobError(error_type=exc.error_type, message=message))
                    return
                delay = self._backoff_seconds(attempt, exc)
                self.on_event("retried")
                logger.info(
                    "job attempt failed, retrying",
                    extra={"job_id": str(job.job_id), "attempt": attempt, "delay": delay},
                )
                await asyncio.sleep(delay)
            except PRSMError as exc:
                await self._fail(job, JobError(error_type=exc.error_type, message=exc.message))
                return
            except Exception:
                logger.exception("job failed unexpectedly", extra={"job_id": str(job.job_id)})
                error = JobError(error_type="internal_error", message="The job failed unexpectedly")
                await self._fail(job, error)
                return
            else:
                response = QueryResponse.model_validate(result)
                completion = {
                    "status": "completed",
                    "completed_at": _now(),
                    "result": response.model_dump_json(),
                }
                if await self._record_outcome(job, completion):
                    self.on_event("completed")
                    logger.info("job completed", extra={"job_id": str(job.job_id)})
                return

    async def _fail(self, job: JobRecord, error: JobError) -> None:
        failure = {"status": "failed", "completed_at": _now(), "error": error.model_dump_json()}
        if await self._record_outcome(job, failure):
            self.on_event("failed")
            logger.info(
                "job failed", extra={"job_id": str(job.job_id), "error_type": error.error_type}
            )

    async def _record_outcome(self, job: JobRecord, outcome: dict[str, str]) -> bool:
        """Records how the job ended, unless it has ended already; True when this recorded it."""
        fields = _hash_fields(outcome)
        key = self.record_key(job.job_id)
        return bool(await self._retried(lambda: self._finish(keys=[key], args=fields)))

    async def _retried(self, command: Callable[[], Awaitable[T]]) -> T:
        """Runs a worker's command on a job's record through a Redis restart or failover."""
        return await _WORKER_RETRY.call_with_retry(command, _try_again)

    def _backoff_seconds(self, attempt: int, exc: PRSMError) -> float:
        delay: float = self._backoff_base_seconds * 2.0 ** (attempt - 1)
        if isinstance(exc, PRSMRateLimitError) and exc.retry_after:
            # PRSM said when to come back; sooner would only be refused again.
            return max(delay, exc.retry_after)
        return delay


async def _try_again(error: Exception) -> None:
    logger.info("job store unreachable, trying again", extra={"error": str(error)})


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _hash_fields(values: dict[str, Any]) -> list[str]:
    """A flat field, value, field, value... list for HSET, every value a string."""
    return [str(item) for pair in values.items() for item in pair]
