"""Readiness under load: a request pool whose every connection is in use is a busy service,
not a user database that is down."""

import asyncio
from contextlib import AsyncExitStack

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from {{ cookiecutter.package_name }}.services import Services


async def test_a_busy_request_pool_is_not_a_database_down(
    client: httpx.AsyncClient, services: Services
) -> None:
    engine: AsyncEngine = services.sessions.kw["bind"]
    async with AsyncExitStack() as held:
        # Take connections until the pool has none left to give.
        while True:
            try:
                async with asyncio.timeout(0.2):
                    await held.enter_async_context(engine.connect())
            except TimeoutError:
                break

        responses = await asyncio.gather(*(client.get("/health/ready") for _ in range(20)))

    assert [r.status_code for r in responses] == [200] * 20
    assert {r.json()["checks"]["database"] for r in responses} == {"ok"}
