"""Fuzz a rendered service through its own OpenAPI schema with schemathesis: by default
(`--fuzz=ci`) everything off, everything on and each feature alone, and with `--fuzz=all`
every on/off mix. Each is served by uvicorn on 127.0.0.1 with the embedded engine, Redis under
a key prefix of its own and (auth on) a migrated SQLite database with one user whose token
every request carries. No response may be a 5xx, and every documented response must match
its schema. The cases generated per combination are recorded for the table at the end."""

from __future__ import annotations

import json
import re
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from baking import BakedProject, Combination

# Per operation and phase; enough to reach every documented status. 250-800 cases and
# 10-30 s of fuzzing a project on 2 cores (the fuzz case table at the end shows both).
MAX_EXAMPLES = 50
FUZZ_USER, FUZZ_PASSWORD = "fuzzer", secrets.token_urlsafe(16)
# Fails the run when the authenticated routes only ever answered 401/403: the token must work.
SCHEMATHESIS_CONFIG = '[warnings]\nfail-on = ["missing_auth"]\n'


def test_fuzzed_service_never_fails(
    fuzz_combination: Combination,
    bake: Callable[..., BakedProject],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
) -> None:
    # The fuzz case table (conftest.py) reads these back on the xdist controller.
    record_property("fuzz_combination", request.node.callspec.id)
    project = bake(**fuzz_combination.answers)
    project.install()
    auth = bool(project.answers["use_auth"])
    prefix = f"fuzz-{uuid.uuid4().hex}:"
    env = {
        **project.env,
        "PRSM_API_URL": "",
        "LOG_LEVEL": "WARNING",
        "REDIS_KEY_PREFIX": prefix,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'fuzz.db'}",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "ARGON2_TIME_COST": "1",
        "ARGON2_MEMORY_COST_KIB": "8",
        "ARGON2_PARALLELISM": "1",
    }
    headers = []
    if auth:
        prepare_user(project, env)
    try:
        with served(project, env, tmp_path / "server.log") as base_url:
            if auth:
                headers = ["-H", f"Authorization: Bearer {access_token(base_url)}"]
            config = tmp_path / "schemathesis.toml"
            config.write_text(SCHEMATHESIS_CONFIG)
            started = time.perf_counter()
            result = subprocess.run(
                [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "--config-file",
                    str(config),
                    "run",
                    f"{base_url}/openapi.json",
                    "--checks",
                    "not_a_server_error,response_schema_conformance",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--request-timeout",
                    "10",
                    "--generation-database",
                    "none",
                    "--no-color",
                    "--report-dir",
                    str(tmp_path / "report"),
                    *headers,
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            record_property("fuzz_seconds", round(time.perf_counter() - started, 2))
    finally:
        if project.answers["use_redis_cache"] or project.answers["use_background_jobs"]:
            delete_redis_keys(project, env, prefix)
    output = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", output)
    record_property("fuzz_cases", int(cases.group(1)) if cases else 0)
    assert result.returncode == 0, output[-6000:]
    assert cases, output[-3000:]


def prepare_user(project: BakedProject, env: dict[str, str]) -> None:
    """Migrate the database and add the user whose token the fuzzer sends, with the
    project's own commands."""
    venv = project.path / ".venv" / "bin"
    for command, stdin in [
        ([str(venv / "alembic"), "upgrade", "head"], None),
        (
            [str(venv / project.package), "create-user", FUZZ_USER, "--quota", "1000000"],
            f"{FUZZ_PASSWORD}\n",
        ),
    ]:
        done = subprocess.run(
            command,
            cwd=project.path,
            env=env,
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
def served(project: BakedProject, env: dict[str, str], log: Path) -> Iterator[str]:
    """The project's app under uvicorn on a free local port, until the block ends."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    uvicorn = project.path / ".venv" / "bin" / "uvicorn"
    command = [str(uvicorn), "--factory", f"{project.package}.main:create_app"]
    with log.open("w") as output:
        server = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=project.path,
            env=env,
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


def access_token(base_url: str) -> str:
    form = urllib.parse.urlencode({"username": FUZZ_USER, "password": FUZZ_PASSWORD}).encode()
    try:
        with urllib.request.urlopen(f"{base_url}/auth/token", data=form, timeout=10) as response:
            token: str = json.load(response)["access_token"]
    except urllib.error.HTTPError as error:
        pytest.fail(f"login refused: {error.code} {error.read().decode()}", pytrace=False)
    return token


def delete_redis_keys(project: BakedProject, env: dict[str, str], prefix: str) -> None:
    """Removes what the fuzzed service wrote (jobs, cache entries), with the project's client."""
    script = (
        "import sys, redis\n"
        "client = redis.Redis.from_url(sys.argv[1])\n"
        "keys = list(client.scan_iter(match=sys.argv[2] + '*'))\n"
        "if keys:\n"
        "    client.delete(*keys)\n"
    )
    python = str(project.path / ".venv" / "bin" / "python")
    subprocess.run(
        [python, "-c", script, env["REDIS_URL"], prefix],
        env=env,
        capture_output=True,
        timeout=60,
        check=True,
    )
