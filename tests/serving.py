"""A rendered service running for real: its environment, its user, uvicorn on a free local port,
and the Redis keys it wrote. The fuzz and browser tests share these."""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from baking import BakedProject


def service_env(project: BakedProject, scratch: Path, **overrides: str) -> dict[str, str]:
    """The embedded PRSM engine, a Redis key prefix of its own, a SQLite user database in
    `scratch`, a random secret and cheap argon2."""
    return {
        **project.env,
        "PRSM_API_URL": "",
        "REDIS_KEY_PREFIX": f"served-{uuid.uuid4().hex}:",
        "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'users.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST_KIB": "8",
        "ARGON2_PARALLELISM": "1",
        **overrides,
    }


def uses_redis(project: BakedProject) -> bool:
    return bool(project.answers["use_redis_cache"] or project.answers["use_background_jobs"])


def prepare_user(
    project: BakedProject, env: Mapping[str, str], username: str, password: str
) -> None:
    """Migrate the database and add a user, with the project's own commands."""
    venv = project.path / ".venv" / "bin"
    for command, stdin in [
        ([str(venv / "alembic"), "upgrade", "head"], None),
        (
            [str(venv / project.package), "create-user", username, "--quota", "1000000"],
            f"{password}\n",
        ),
    ]:
        done = subprocess.run(
            command,
            cwd=project.path,
            env=dict(env),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, f"{command}: {done.stdout}{done.stderr}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def served(project: BakedProject, env: Mapping[str, str], log: Path) -> Iterator[str]:
    """The project's app under uvicorn on a free local port, until the block ends."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    uvicorn = project.path / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), "--factory", f"{project.package}.main:create_app"]
    with log.open("w") as output:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=project.path,
            env=dict(env),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while True:
            if server.poll() is not None:
                pytest.fail(f"the service exited at start:\n{log.read_text()}", pytrace=False)
            try:
                with urllib.request.urlopen(f"{base_url}/health", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the service did not start:\n{log.read_text()}", pytrace=False)
                time.sleep(0.1)
        yield base_url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def access_token(base_url: str, username: str, password: str) -> str:
    form = urllib.parse.urlencode({"username": username, "password": password}).encode()
    try:
        with urllib.request.urlopen(f"{base_url}/auth/token", data=form, timeout=10) as response:
            token: str = json.load(response)["access_token"]
    except urllib.error.HTTPError as error:
        pytest.fail(f"login refused: {error.code} {error.read().decode()}", pytrace=False)
    return token


def delete_redis_keys(project: BakedProject, env: Mapping[str, str]) -> None:
    """Removes what the service wrote under its prefix (jobs, cache entries), with the
    project's own client."""
    script = (
        "import sys, redis\n"
        "client = redis.Redis.from_url(sys.argv[1])\n"
        "keys = list(client.scan_iter(match=sys.argv[2] + '*'))\n"
        "if keys:\n"
        "    client.delete(*keys)\n"
    )
    python = str(project.path / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-c", script, env["REDIS_URL"], env["REDIS_KEY_PREFIX"]],
        env=dict(env),
        capture_output=True,
        timeout=60,
        check=True,
    )
