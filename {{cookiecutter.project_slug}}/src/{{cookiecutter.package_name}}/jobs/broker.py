"""The Redis stream that carries job ids to the workers, and its taskiq broker."""

import asyncio
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from typing import Any

from redis.asyncio import Redis
from redis.exceptions import RedisError
from taskiq import AckableMessage
from taskiq_redis import RedisStreamBroker

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.heartbeat import keep_beating
from {{ cookiecutter.package_name }}.redis_client import resend_once

# The one task of the queue; the web process sends it by name, the worker registers it.
RUN_JOB = "jobs.run"
# How long a worker waits before reading the stream again after Redis went away.
RECONNECT_DELAY_SECONDS = 1.0
# The longest a worker blocks on the stream before it looks for abandoned jobs again.
MAX_BLOCK_SECONDS = 2.0
# Redis's answers to a read of a stream, or a consumer group, that is gone.
_STREAM_LOST = ("NOGROUP", "UNBLOCKED")

logger = logging.getLogger(__name__)

Entry = tuple[bytes, dict[bytes, bytes]]


class JobBroker(RedisStreamBroker):
    """taskiq-redis's stream broker, made to lose no job and to keep the stream short.

    - A job left unacknowledged by a worker that died is taken over by the next worker that
      looks, on every pass over the stream; taskiq-redis looks only after new messages arrive,
      so with no new traffic a dead worker's job would wait forever.
    - A worker keeps claiming the jobs it is running, so one that runs (or backs off) longer
      than the idle time is not taken over while its worker is alive.
    - An acknowledged message is deleted: the stream holds only jobs waiting or running.
    - Messages are read one at a time, so none waits unclaimed in a busy worker's batch.
    - While it listens, a heartbeat file (if one is set) says the worker is not stuck.
    """

    def __init__(
        self,
        url: str,
        *,
        stream: str,
        group: str,
        idle_seconds: float,
        socket_timeout_seconds: float,
        heartbeat_file: Path | None = None,
    ) -> None:
        block_seconds = min(MAX_BLOCK_SECONDS, idle_seconds / 2)
        super().__init__(
            url,
            queue_name=stream,
            consumer_group_name=group,
            # A group created after jobs were queued still delivers them.
            consumer_id="0",
            idle_timeout=max(1, round(idle_seconds * 1000)),
            xread_block=max(1, round(block_seconds * 1000)),
            xread_count=1,
            socket_connect_timeout=socket_timeout_seconds,
            # A blocking read holds its connection for the whole block time.
            socket_timeout=socket_timeout_seconds + block_seconds,
            retry=resend_once(),
        )
        self._idle_seconds = idle_seconds
        self._heartbeat_file = heartbeat_file

    async def listen(self) -> AsyncGenerator[AckableMessage]:
        running: set[bytes] = set()
        beside = [asyncio.create_task(self._keep_claimed(running))]
        if self._heartbeat_file is not None:
            beside.append(asyncio.create_task(keep_beating(self._heartbeat_file)))
        try:
            async with Redis(connection_pool=self.connection_pool) as redis:
                next_takeover = 0.0
                while not _stopping():
                    try:
                        entries: list[Entry] = []
                        if time.monotonic() >= next_takeover:
                            entries = await self._take_over_abandoned(redis, running)
                            # Several may be waiting: look again at once while some are found.
                            if not entries:
                                next_takeover = time.monotonic() + self._idle_seconds / 2
                        if not entries:
                            entries = await self._read_new(redis)
                    except (RedisError, OSError) as exc:
                        error = str(exc) or repr(exc)
                        if error.startswith(_STREAM_LOST):
                            # Redis lost the stream (restarted without its data): make it again.
                            logger.warning("job stream lost, declaring it again")
                            with suppress(RedisError, OSError):
                                await self._declare_consumer_group()
                            continue
                        logger.warning("job stream unreachable", extra={"error": error})
                        await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                        continue
                    for message_id, fields in entries:
                        running.add(message_id)
                        yield AckableMessage(
                            data=fields.get(b"data", b""), ack=self._acker(message_id, running)
                        )
            raise asyncio.CancelledError
        finally:
            for task in beside:
                task.cancel()

    async def _take_over_abandoned(self, redis: Redis, running: set[bytes]) -> list[Entry]:
        reply: list[Any] = await redis.xautoclaim(
            self.queue_name,
            self.consumer_group_name,
            self.consumer_name,
            min_idle_time=self.idle_timeout,
            count=1,
        )
        # A job of this worker's own looks abandoned when the worker was too busy to keep it
        # claimed; it is still running, and must not run twice.
        claimed: list[Entry] = [entry for entry in reply[1] if entry[0] not in running]
        if claimed:
            message_id = claimed[0][0].decode()
            logger.warning("taking over an abandoned job", extra={"message_id": message_id})
        return claimed

    async def _read_new(self, redis: Redis) -> list[Entry]:
        reply: list[tuple[bytes, list[Entry]]] | None
        reply = await redis.xreadgroup(  # type: ignore[assignment]
            self.consumer_group_name,
            self.consumer_name,
            {self.queue_name: ">"},
            count=1,
            block=self.block,
        )
        return [entry for _, entries in reply or [] for entry in entries]

    async def _keep_claimed(self, running: set[bytes]) -> None:
        """Resets the idle time of the jobs this worker runs, until it stops."""
        while True:
            await asyncio.sleep(self._idle_seconds / 3)
            if not running:
                continue
            try:
                async with Redis(connection_pool=self.connection_pool) as redis:
                    await redis.xclaim(
                        self.queue_name,
                        self.consumer_group_name,
                        self.consumer_name,
                        min_idle_time=0,
                        message_ids=list(running),
                        justid=True,
                    )
            except (RedisError, OSError) as exc:
                logger.warning(
                    "could not keep running jobs claimed", extra={"error": str(exc) or repr(exc)}
                )

    def _acker(self, message_id: bytes, running: set[bytes]) -> Callable[[], Awaitable[None]]:
        async def ack() -> None:
            running.discard(message_id)
            async with Redis(connection_pool=self.connection_pool) as redis:
                pipeline = redis.pipeline(transaction=True)
                pipeline.xack(self.queue_name, self.consumer_group_name, message_id)
                pipeline.xdel(self.queue_name, message_id)
                await pipeline.execute()

        return ack


def _stopping() -> bool:
    """Whether this task has been told to stop.

    A cancel that lands just as a Redis read times out can come back from redis-py as the
    timeout (which the read loop survives, or the client retries) instead of CancelledError;
    the worker would then never stop listening."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


def create_broker(settings: Settings) -> JobBroker:
    return JobBroker(
        settings.redis_url,
        stream=f"{settings.redis_key_prefix}{settings.job_stream}",
        group=settings.job_consumer_group,
        idle_seconds=settings.job_redelivery_idle_seconds,
        socket_timeout_seconds=settings.redis_socket_timeout_seconds,
        heartbeat_file=Path(settings.job_heartbeat_file) if settings.job_heartbeat_file else None,
    )
