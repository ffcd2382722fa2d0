"""Median latency of logins and of authenticated queries, in-process, with the production
argon2 cost (ARGON2_* defaults) and the embedded PRSM engine.

    uv run python scripts/bench_auth.py --rounds 50

Works in a SQLite database of its own, made with the project's migrations and deleted after.
"""

import argparse
import asyncio
import secrets
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path

import httpx
from alembic import command
from alembic.config import Config

from {{ cookiecutter.package_name }}.auth.security import passwords_for
from {{ cookiecutter.package_name }}.auth.users import create_user
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.services import Services

PASSWORD = "benchmark password"  # noqa: S105 -- a throwaway user in a throwaway database


async def median_ms(rounds: int, call: Callable[[int], Awaitable[httpx.Response]]) -> float:
    timings = []
    for n in range(rounds):
        started = time.perf_counter()
        response = await call(n)
        timings.append((time.perf_counter() - started) * 1000)
        if response.status_code not in (200, 401):
            raise RuntimeError(f"unexpected answer {response.status_code}: {response.text}")
    return statistics.median(timings)


async def bench(settings: Settings, rounds: int) -> None:
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        services: Services = app.state.services
        await create_user(
            services.sessions, passwords_for(settings), "bench", PASSWORD, Decimal(10**6)
        )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:

            def login(username: str, password: str) -> Callable[[int], Awaitable[httpx.Response]]:
                form = {"username": username, "password": password}
                return lambda n: client.post("/auth/token", data=form)

            await login("nobody", PASSWORD)(0)  # the first unknown name prepares the dummy hash
            results = {
                "login": await median_ms(rounds, login("bench", PASSWORD)),
                "login, wrong password": await median_ms(rounds, login("bench", "wrong")),
                "login, unknown user": await median_ms(rounds, login("nobody", PASSWORD)),
            }
            token = (await login("bench", PASSWORD)(0)).json()["access_token"]
            client.headers["Authorization"] = f"Bearer {token}"
            results["authenticated query"] = await median_ms(
                rounds,
                # A new prompt each time: no cache answers for the service.
                lambda n: client.post("/ai/query", json={"prompt": f"What is {n}+1?"}),
            )
    print(
        f"argon2id t={settings.argon2_time_cost} m={settings.argon2_memory_cost_kib} KiB "
        f"p={settings.argon2_parallelism}, {rounds} rounds, median:"
    )
    for name, value in results.items():
        print(f"  {name:<22} {value:7.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=50)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        settings = Settings(
            _env_file=None,
            prsm_api_url="",
            log_level="WARNING",
            secret_key=secrets.token_urlsafe(48),
            database_url=f"sqlite+aiosqlite:///{Path(directory) / 'bench.db'}",
            # Every failed login is timed, none refused.
            login_max_failures=10**6,
            login_max_failures_per_address=10**6,
        )
        config = Config(Path(__file__).resolve().parents[1] / "alembic.ini")
        config.set_main_option("sqlalchemy.url", settings.database_url)
        config.attributes["configure_logging"] = False
        command.upgrade(config, "head")
        asyncio.run(bench(settings, rounds))


if __name__ == "__main__":
    main()
