"""Median latency of a cache miss and of a cache hit through the whole app, in-process, with
the embedded PRSM engine and the Redis at REDIS_URL.

    uv run python scripts/bench_cache.py --rounds 300

Writes under a key prefix of its own and deletes it afterwards.
"""

import argparse
import asyncio
{% if cookiecutter.use_auth %}
import secrets
{% endif %}
import statistics
{% if cookiecutter.use_auth %}
import tempfile
{% endif %}
import time
import uuid
from collections.abc import Awaitable, Callable
{% if cookiecutter.use_auth %}
from decimal import Decimal
from pathlib import Path
{% endif %}

import httpx
{% if cookiecutter.use_auth %}
from alembic import command
from alembic.config import Config
{% endif %}
from redis.asyncio import Redis

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.security import create_access_token, passwords_for
from {{ cookiecutter.package_name }}.auth.users import create_user
{% endif %}
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.main import create_app
{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.services import Services
{% endif %}

USER = "bench"


async def median_ms(rounds: int, call: Callable[[int], Awaitable[httpx.Response]]) -> float:
    timings = []
    for n in range(rounds):
        started = time.perf_counter()
        response = await call(n)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code != 200:
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
    return statistics.median(timings)


async def bench(settings: Settings, rounds: int) -> dict[str, float]:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
{% if cookiecutter.use_auth %}
            services: Services = app.state.services
            passwords = passwords_for(settings)
            password = secrets.token_urlsafe(16)
            await create_user(services.sessions, passwords, USER, password, Decimal(10**6))
            token, _ = create_access_token(USER, settings)
            client.headers["Authorization"] = f"Bearer {token}"
            caller: dict[str, str] = {}
{% else %}
            caller = {"user_id": USER}
{% endif %}

            def ask(prompt: Callable[[int], str]) -> Callable[[int], Awaitable[httpx.Response]]:
                return lambda n: client.post("/ai/query", json={**caller, "prompt": prompt(n)})

            await ask(lambda n: "What is 6*7?")(0)  # cached from here on
            results = {
                "miss": await median_ms(rounds, ask(lambda n: f"What is {n}*7?")),
                "hit": await median_ms(rounds, ask(lambda n: "What is 6*7?")),
            }
    await delete_keys(settings)
    return results


async def delete_keys(settings: Settings) -> None:
    redis = Redis.from_url(settings.redis_url)
    try:
        keys = [key async for key in redis.scan_iter(match=f"{settings.redis_key_prefix}*")]
        if keys:
            await redis.delete(*keys)
    finally:
        await redis.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=300)
    rounds = parser.parse_args().rounds
{% if cookiecutter.use_auth %}
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            log_level="WARNING",
            prsm_api_url="",
            redis_key_prefix=f"bench-{uuid.uuid4().hex}:",
            secret_key=secrets.token_urlsafe(48),
            database_url=f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}",
        )
        config = Config(Path(__file__).resolve().parents[1] / "alembic.ini")
        config.set_main_option("sqlalchemy.url", settings.database_url)
        config.attributes["configure_logging"] = False
        command.upgrade(config, "head")
        results = asyncio.run(bench(settings, rounds))
{% else %}
    settings = Settings(
        log_level="WARNING", prsm_api_url="", redis_key_prefix=f"bench-{uuid.uuid4().hex}:"
    )
    results = asyncio.run(bench(settings, rounds))
{% endif %}
    print(f"{rounds} rounds through the whole app, median:")
    for name, value in results.items():
        print(f"  cache {name:<5} {value:7.2f} ms")


if __name__ == "__main__":
    main()
