import asyncio
import io
import sys
from collections.abc import Awaitable, Callable
from importlib.metadata import entry_points
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.auth.cli import main
from {{ cookiecutter.package_name }}.config import Settings
from tests.auth.helpers import login

PASSWORD = "a long enough password"

Run = Callable[..., Awaitable[tuple[int, str, str]]]


@pytest.fixture
def cli_environment(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> dict[str, str]:
    """The command reads its settings like the service: here, the tests' own."""
    environment = {
        "ENVIRONMENT": "test",
        "DATABASE_URL": settings.database_url,
        "SECRET_KEY": settings.secret_key.get_secret_value(),
        "ARGON2_TIME_COST": str(settings.argon2_time_cost),
        "ARGON2_MEMORY_COST_KIB": str(settings.argon2_memory_cost_kib),
        "ARGON2_PARALLELISM": str(settings.argon2_parallelism),
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    return environment


@pytest.fixture
def run(
    cli_environment: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> Run:
    """Runs the command line in-process (on its own thread and event loop, as from a shell)."""

    async def run(*argv: str, stdin: str = "") -> tuple[int, str, str]:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        code = await asyncio.to_thread(main, list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


async def test_create_user_reads_the_password_from_stdin(
    run: Run, client: httpx.AsyncClient
) -> None:
    code, out, _ = await run("create-user", "alice", "--quota", "25", stdin=f"{PASSWORD}\n")

    assert code == 0
    assert "created alice" in out
    response = await login(client, "alice", PASSWORD)
    assert response.status_code == 200
    token = response.json()["access_token"]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json() == {"username": "alice", "quota": 25.0, "is_active": True}


async def test_create_user_refuses_a_taken_name(run: Run) -> None:
    await run("create-user", "alice", "--quota", "1", stdin=PASSWORD)

    code, _, err = await run("create-user", "alice", "--quota", "1", stdin=PASSWORD)

    assert code == 1
    assert "already exists" in err


@pytest.mark.parametrize(
    ("username", "password", "message"),
    [
        ("alice", "short", "at least 8 characters"),
        ("alice", "", "at least 8 characters"),
        ("not a name!", PASSWORD, "a username is"),
    ],
)
async def test_create_user_refuses_bad_input(
    run: Run, username: str, password: str, message: str
) -> None:
    code, _, err = await run("create-user", username, "--quota", "1", stdin=password)

    assert code == 1
    assert message in err


@pytest.mark.parametrize("quota", ["-1", "lots", "NaN"])
async def test_a_quota_must_be_ftns(run: Run, quota: str) -> None:
    with pytest.raises(SystemExit) as exited:
        await run("create-user", "alice", "--quota", quota, stdin=PASSWORD)

    assert exited.value.code == 2


async def test_set_quota(run: Run, client: httpx.AsyncClient) -> None:
    await run("create-user", "alice", "--quota", "1", stdin=PASSWORD)

    code, _, _ = await run("set-quota", "alice", "40.5")

    assert code == 0
    token = (await login(client, "alice", PASSWORD)).json()["access_token"]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.json()["quota"] == 40.5


async def test_changing_an_unknown_user_fails(run: Run) -> None:
    for argv in (["set-quota", "nobody", "1"], ["deactivate", "nobody"]):
        code, _, err = await run(*argv)

        assert code == 1
        assert "no user 'nobody'" in err


async def test_deactivate_and_activate(run: Run, client: httpx.AsyncClient) -> None:
    await run("create-user", "alice", "--quota", "1", stdin=PASSWORD)

    await run("deactivate", "alice")
    refused = await login(client, "alice", PASSWORD)
    await run("activate", "alice")
    accepted = await login(client, "alice", PASSWORD)

    assert refused.status_code == 403
    assert accepted.status_code == 200


async def test_set_password(run: Run, client: httpx.AsyncClient) -> None:
    await run("create-user", "alice", "--quota", "1", stdin=PASSWORD)

    code, _, _ = await run("set-password", "alice", stdin="an entirely new password\n")

    assert code == 0
    assert (await login(client, "alice", PASSWORD)).status_code == 401
    assert (await login(client, "alice", "an entirely new password")).status_code == 200


async def test_list_users(run: Run) -> None:
    await run("create-user", "bob", "--quota", "2.25", stdin=PASSWORD)
    await run("create-user", "alice", "--quota", "100", stdin=PASSWORD)
    await run("deactivate", "bob")

    code, out, _ = await run("list-users")

    assert code == 0
    header, *rows = out.splitlines()
    assert header.split() == ["USERNAME", "QUOTA", "(FTNS)", "STATE", "CREATED"]
    assert [row.split()[:3] for row in rows] == [
        ["alice", "100", "active"],
        ["bob", "2.25", "inactive"],
    ]


def test_the_command_is_installed_under_the_package_name() -> None:
    """`{{ cookiecutter.package_name }} create-user ...` works from the virtualenv, as pyproject declares."""
    (script,) = entry_points(group="console_scripts", name="{{ cookiecutter.package_name }}")

    assert script.load() is main
    assert Path(sys.executable).with_name(script.name).exists()
