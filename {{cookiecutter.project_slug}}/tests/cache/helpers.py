import asyncio
import subprocess
from pathlib import Path

import pytest
from redis.asyncio import Redis

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.redis_client import redis_answers


async def cache_keys(redis: Redis, settings: Settings) -> list[str]:
    pattern = f"{settings.redis_key_prefix}cache:*"
    return [key.decode() async for key in redis.scan_iter(match=pattern)]


class RedisServer:
    """A private redis-server on a port of its own, which a test may stop and start again."""

    def __init__(self, binary: str, port: int, directory: Path) -> None:
        self._binary = binary
        self._directory = directory
        self._process: asyncio.subprocess.Process | None = None
        self.port = port
        self.url = f"redis://127.0.0.1:{port}/0"

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            self._binary,
            *("--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self._directory)),
            *("--save", "", "--appendonly", "no"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = Redis.from_url(self.url)
        try:
            async with asyncio.timeout(10):
                while not await redis_answers(client):
                    if self._process.returncode is not None:
                        pytest.fail(f"redis-server on port {self.port} exited at start")
                    await asyncio.sleep(0.02)
        except TimeoutError:
            pytest.fail(f"redis-server on port {self.port} did not answer within 10 s")
        finally:
            await client.aclose()

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()
