"""`python -m {{ cookiecutter.package_name }}.serve`, the production start command, on a real local
port: on SIGTERM it finishes its graceful shutdown and exits 0, where `uvicorn` itself would end
killed by the signal once more; with several workers, each takes its share of the connections;
started as the image starts it, every line it writes is one JSON object (see test_logging.py)."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Settings
from tests.helpers import (
    check_server_log,
    free_port,
    log_a_request_and_a_bad_one,
    settings_env,
    wait_until_serving,
)

PROJECT = Path(__file__).resolve().parent.parent
STARTUP_SECONDS = 30
STOP_SECONDS = 30
# Connections opened at once against two workers: all of them landing on one worker by chance
# has a probability of 2 in 2**40.
CONNECTIONS = 40
# SO_REUSEPORT spreads connections over sockets on Linux only; /proc shows who holds them.
ON_LINUX = sys.platform == "linux"


def test_sigterm_ends_a_graceful_shutdown_with_status_0(tmp_path: Path, settings: Settings) -> None:
    with _serving(tmp_path, settings, workers=1) as (server, _, log):
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=STOP_SECONDS)

    logged = log.read_text(errors="replace")
    assert status == 0, logged
    assert "Application shutdown complete" in logged


def test_two_workers_as_the_image_starts_them(tmp_path: Path, settings: Settings) -> None:
    """WEB_CONCURRENCY=2 and the log configuration from UVICORN_LOG_CONFIG: each worker takes
    a share of the connections, every line written is one JSON log entry, and SIGTERM ends it
    with status 0. One test for the three: each start imports the app in every worker, and
    pytest-xdist would run separate tests in different processes, each starting its own."""
    image = {"UVICORN_LOG_CONFIG": str(PROJECT / "logging.yaml")}
    with _serving(tmp_path, settings, workers=2, **image) as (server, port, log):
        held: dict[int, int] = {}
        if ON_LINUX:
            # The first worker up answers /health; the other may still be starting.
            _wait_until(lambda: len(_sockets_on(port)["listening"]) == 2, "both workers to listen")
        connections = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNECTIONS)]
        try:
            for connection in connections:
                connection.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            answers = [connection.recv(4096) for connection in connections]
            if ON_LINUX:
                held = _connections_held_by_workers(server.pid, port)
        finally:
            for connection in connections:
                connection.close()
        log_a_request_and_a_bad_one(port)
        server.send_signal(signal.SIGTERM)
        status = server.wait(timeout=STOP_SECONDS)

    logged = log.read_text(errors="replace")
    assert all(answer.startswith(b"HTTP/1.1 200 ") for answer in answers), logged
    assert status == 0, logged
    if ON_LINUX:
        assert len(held) == 2, held
        assert sum(held.values()) == CONNECTIONS
        assert min(held.values()) > 0, held
    # The supervisor's lines besides the workers'.
    check_server_log(logged, ["Started parent process", "Stopping parent process"])


@contextmanager
def _serving(
    directory: Path, settings: Settings, workers: int, **variables: str
) -> Iterator[tuple["subprocess.Popen[bytes]", int, Path]]:
    """The start command on a free port, started in an empty directory (no .env changes what
    the test checks), up and answering; `variables` are more of its environment."""
    port = free_port()
    env = {
        **os.environ,
        **settings_env(settings),
        "UVICORN_HOST": "127.0.0.1",
        "UVICORN_PORT": str(port),
        "WEB_CONCURRENCY": str(workers),
        **variables,
    }
    log = directory / "server.log"
    command = [sys.executable, "-m", "{{ cookiecutter.package_name }}.serve"]
    with (
        log.open("wb") as output,
        subprocess.Popen(  # noqa: S603 -- this interpreter, fixed arguments
            command, cwd=directory, env=env, stdout=output, stderr=subprocess.STDOUT
        ) as server,
    ):
        try:
            url = f"http://127.0.0.1:{port}/health"
            wait_until_serving(url, server, log, seconds=STARTUP_SECONDS)
            yield server, port, log
        finally:
            server.kill()


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"waited {STARTUP_SECONDS} s for {what}")
        time.sleep(0.02)


def _sockets_on(port: int) -> dict[str, set[str]]:
    """The listening sockets and the established connections on `port`, as /proc names them
    among a process's open files."""
    sockets: dict[str, set[str]] = {"listening": set(), "established": set()}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            state = {"0A": "listening", "01": "established"}.get(fields[3])
            if state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                sockets[state].add(f"socket:[{fields[9]}]")
    return sockets


def _connections_held_by_workers(supervisor: int, port: int) -> dict[int, int]:
    """Worker process id -> the established connections to `port` it holds, for each child of
    the supervisor that listens on `port` itself."""
    sockets = _sockets_on(port)
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    held = {}
    for child in map(int, children):
        files = {os.readlink(fd) for fd in Path(f"/proc/{child}/fd").iterdir()}
        if files & sockets["listening"]:
            held[child] = len(files & sockets["established"])
    return held
