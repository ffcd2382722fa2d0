"""One log format: every line a real server writes, uvicorn's own included, is one JSON object
with the same fields. Here the server starts as the README's development command starts it
(--reload); test_serve.py checks the same of the image's start command, with two workers."""

import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import (
    check_server_log,
    free_port,
    json_log_entries,
    log_a_request_and_a_bad_one,
    wait_until_serving,
)

PROJECT = Path(__file__).resolve().parent.parent
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--factory",
    "{{ cookiecutter.package_name }}.main:create_app",
]
RELOAD = ["--reload", "--reload-dir", "src", "--log-config", "logging.yaml"]
# What the reloader must have said, besides what every server says.
RELOADER_LINES = ["Will watch for changes", "Started reloader process", "Stopping reloader process"]


def server_env(tmp_path: Path, port: int, **variables: str) -> dict[str, str]:
    return {
        **os.environ,
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        # The test's own settings, whatever a developer's .env says.
        "ENVIRONMENT": "test",
        "LOG_LEVEL": "INFO",
        "PRSM_API_URL": "",
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'users.db'}",
        **variables,
    }


@pytest.fixture
def server_output(tmp_path: Path) -> str:
    """Starts the server, makes it log a request and an invalid one, stops it with SIGTERM;
    returns all it wrote, standard output and error together."""
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(  # noqa: S603 -- this interpreter, fixed arguments
            [*UVICORN, *RELOAD],
            cwd=PROJECT,
            env=server_env(tmp_path, port),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until_serving(f"http://127.0.0.1:{port}/health", server, log, seconds=60)
        log_a_request_and_a_bad_one(port)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return log.read_text(encoding="utf-8")


def test_every_line_the_server_writes_is_one_json_entry(server_output: str) -> None:
    check_server_log(server_output, RELOADER_LINES)


def test_invalid_settings_stop_the_server_with_one_json_line(tmp_path: Path) -> None:
    # Refused in production whatever the features: DEBUG on.
    env = server_env(
        tmp_path,
        free_port(),
        ENVIRONMENT="production",
        DEBUG="true",
        SECRET_KEY=secrets.token_urlsafe(48),
    )

    done = subprocess.run(  # noqa: S603 -- this interpreter, fixed arguments
        [*UVICORN, "--log-config", "logging.yaml"],
        cwd=PROJECT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert done.returncode != 0
    assert done.stdout == ""
    entries = json_log_entries(done.stderr)
    assert [entry["level"] for entry in entries] == ["CRITICAL"], entries
    assert entries[0]["message"] == "invalid settings: DEBUG must be off in production"
