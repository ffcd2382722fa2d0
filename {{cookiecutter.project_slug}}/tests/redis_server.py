"""A private redis-server for the tests that stop Redis: the shared one, which others use,
is never stopped."""

import asyncio
import shutil
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.redis_client import redis_answers
from tests.helpers import free_port

START_TIMEOUT_SECONDS = 10


class RedisServer:
    """A redis-server on a port of its own, which a test may stop and start again.

    By default it keeps nothing: `stop` kills it, and it comes back empty, as a cache may.
    A persistent one writes an append-only file in its directory and `stop` shuts it down
    gracefully, so it comes back with all it had, as the Redis that holds jobs must.
    """

    def __init__(
        self, binary: str, port: int, directory: Path, *, persistent: bool = False
    ) -> None:
        self._binary = binary
        self._directory = directory
        self._persistent = persistent
        self._process: asyncio.subprocess.Process | None = None
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._directory)),
            *("--save", "", "--appendonly", "yes" if self._persistent else "no"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            async with asyncio.timeout(START_TIMEOUT_SECONDS):
                while not await redis_answers(client):
                    if self._process.returncode is not None:
                        pytest.fail(f"redis-server on port {self.port} exited at start")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pytest.fail(
                f"redis-server on port {self.port} did not answer within {START_TIMEOUT_SECONDS} s"
            )
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self._process is None or self._process.returncode is not None:
            return
        if self._persistent:
            # SIGTERM is a graceful SHUTDOWN: Redis writes out its append-only file, then exits.
            self._process.terminate()
        else:
            self._process.kill()
        await self._process.wait()


@asynccontextmanager
async def private_redis_server(
    directory: Path, *, persistent: bool = False
) -> AsyncIterator[RedisServer]:
    """A started RedisServer on a free port, with its files in `directory`; stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("the tests that stop Redis run their own redis-server: put it on PATH")
    server = RedisServer(binary, free_port(), directory, persistent=persistent)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()
