"""One log format: every line a real server writes, uvicorn's own included, is one JSON object
with the same fields. The server is started as the image starts it (UVICORN_LOG_CONFIG, two
workers from WEB_CONCURRENCY) and as the README's development command does (--reload)."""

import json
import os
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port, wait_until_serving

PROJECT = Path(__file__).resolve().parent.parent
FIELDS = {"time", "level", "logger", "message", "request_id"}
UVICORN = [
    sys.executable,
    "-m",
    "uvicorn",
    "--factory",
    "{{ cookiecutter.package_name }}.main:create_app",
]

STARTS = {
    "workers": ([], {"UVICORN_LOG_CONFIG": "logging.yaml", "WEB_CONCURRENCY": "2"}),
    "reload": (["--reload", "--reload-dir", "src", "--log-config", "logging.yaml"], {}),
}
# What each way of starting must have said, besides the requests: the supervisor's lines and
# the server's, startup and shutdown, and a warning of uvicorn's own.
EXPECTED = {
    "workers": ["Started parent process", "Stopping parent process"],
    "reload": ["Will watch for changes", "Started reloader process", "Stopping reloader process"],
}
EXPECTED_ALWAYS = [
    "Started server process",
    "Application startup complete",
    "Invalid HTTP request received.",
    "Application shutdown complete",
]


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


def json_entries(output: str) -> list[dict[str, object]]:
    """Each line as a log entry; fails at the first line that is not one."""
    entries = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not JSON: {line!r}\n\nall output:\n{output}")
        assert isinstance(entry, dict), line
        assert entry.keys() >= FIELDS, line
        entries.append(entry)
    return entries


@pytest.fixture(params=STARTS, ids=list(STARTS))
def server_output(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """Starts the server, makes it log a request and an invalid one, stops it with SIGTERM;
    returns how it was started and all it wrote, standard output and error together."""
    flags, variables = STARTS[request.param]
    port = free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as output:
        server = subprocess.Popen(  # noqa: S603 -- this interpreter, fixed arguments
            [*UVICORN, *flags],
            cwd=PROJECT,
            env=server_env(tmp_path, port, **variables),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        url = f"http://127.0.0.1:{port}/health"
        wait_until_serving(url, server, log, seconds=60)
        httpx.get(url, headers={"X-Request-ID": "log-test"}).raise_for_status()
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(b"NOT HTTP\r\n\r\n")
            raw.recv(1024)
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    return request.param, log.read_text(encoding="utf-8")


def test_every_line_the_server_writes_is_one_json_entry(server_output: tuple[str, str]) -> None:
    start, output = server_output

    entries = json_entries(output)

    messages = [str(entry["message"]) for entry in entries]
    for expected in [*EXPECTED[start], *EXPECTED_ALWAYS]:
        assert any(expected in message for message in messages), (expected, messages)
    # One access log: the app's request line, with the caller's request id; none of uvicorn's.
    requests = [entry for entry in entries if entry["message"] == "request"]
    assert any(entry["request_id"] == "log-test" for entry in requests), requests
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]


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
    entries = json_entries(done.stderr)
    assert [entry["level"] for entry in entries] == ["CRITICAL"], entries
    assert entries[0]["message"] == "invalid settings: DEBUG must be off in production"
