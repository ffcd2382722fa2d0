"""`python -m {{ cookiecutter.package_name }}.serve`, the image's start command, on a real local port:
on SIGTERM it finishes its graceful shutdown and exits 0, where `uvicorn` itself would end
killed by the signal once more."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import free_port, settings_env

STARTUP_SECONDS = 30
STOP_SECONDS = 30


def test_sigterm_ends_a_graceful_shutdown_with_status_0(tmp_path: Path, settings: Settings) -> None:
    port = free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
    }
    log = tmp_path / "server.log"
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.serve"]
    # Started in an empty directory, so that no .env changes what the test checks.
    with (
        log.open("wb") as output,
        subprocess.Popen(  # noqa: S603 -- this interpreter, fixed arguments
            command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT
        ) as server,
    ):
        try:
            _wait_until_up(f"http://127.0.0.1:{port}/health", server, log)
            server.send_signal(signal.SIGTERM)
            status = server.wait(timeout=STOP_SECONDS)
        finally:
            server.kill()

    logged = log.read_text(errors="replace")
    assert status == 0, logged
    assert "Application shutdown complete" in logged


def _wait_until_up(url: str, server: "subprocess.Popen[bytes]", log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    output = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"the server did not answer {url} within {STARTUP_SECONDS} s:\n{output}")
