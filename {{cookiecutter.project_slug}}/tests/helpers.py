import asyncio
import json
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from pydantic import SecretStr
from starlette.types import ASGIApp

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.main import create_app

TEST_USER = "alice"
{% if cookiecutter.use_auth %}
# With auth on, the PRSM user is the token's user: request bodies name none.
CALLER_FIELDS: dict[str, str] = {}
{% else %}
CALLER_FIELDS = {"user_id": TEST_USER}
{% endif %}


def query_body(prompt: str, **fields: Any) -> dict[str, Any]:
    """A valid /ai/query body for the test user."""
    return {**CALLER_FIELDS, "prompt": prompt, **fields}


def sse_events(response: httpx.Response) -> list[tuple[str, dict[str, Any]]]:
    """The (event, data) pairs of a Server-Sent Events body."""
    events = []
    for block in response.text.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
        )
        if "data" in fields:
            events.append((fields.get("event", "message"), json.loads(fields["data"])))
    return events


def settings_env(settings: Settings) -> dict[str, str]:
    """The environment variables that give a server or worker process these settings."""
    env = {}
    for name, value in settings:
        if value is None:
            continue
        plain = value.get_secret_value() if isinstance(value, SecretStr) else value
        env[name.upper()] = plain if isinstance(plain, str) else json.dumps(plain, default=str)
    return env


# The fields of every line the service logs.
LOG_FIELDS = {"time", "level", "logger", "message", "request_id"}


def json_log_entries(output: str) -> list[dict[str, object]]:
    """Each line of a server's output as a log entry; fails at the first line that is not a
    JSON object with every field of the log format."""
    entries = []
    for line in output.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            pytest.fail(f"not JSON: {line!r}\n\nall output:\n{output}")
        if not isinstance(entry, dict) or not entry.keys() >= LOG_FIELDS:
            pytest.fail(f"not a log entry with the fields {sorted(LOG_FIELDS)}: {line!r}")
        entries.append(entry)
    return entries


# The request id a server's logged request must carry (`log_a_request_and_a_bad_one`).
LOGGED_REQUEST_ID = "log-test"
# What every server says, besides its requests, when `log_a_request_and_a_bad_one` runs before
# its stop: its start and stop, and a warning of uvicorn's own.
SERVER_LINES = [
    "Started server process",
    "Application startup complete",
    "Invalid HTTP request received.",
    "Application shutdown complete",
]


def log_a_request_and_a_bad_one(port: int) -> None:
    """Has the server on `port` log a request with the caller's request id, and a warning about
    a request that is not HTTP."""
    url = f"http://127.0.0.1:{port}/health"
    httpx.get(url, headers={"X-Request-ID": LOGGED_REQUEST_ID}).raise_for_status()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(b"NOT HTTP\r\n\r\n")
        raw.recv(1024)


def check_server_log(output: str, expected: list[str]) -> None:
    """Every line of `output` is a JSON log entry; the messages include each of `expected` and
    `SERVER_LINES`; one access log: the app's request line, with the caller's request id, and
    none of uvicorn's."""
    entries = json_log_entries(output)
    messages = [str(entry["message"]) for entry in entries]
    for line in [*expected, *SERVER_LINES]:
        assert any(line in message for message in messages), (line, messages)
    requests = [entry for entry in entries if entry["message"] == "request"]
    assert any(entry["request_id"] == LOGGED_REQUEST_ID for entry in requests), requests
    assert not [entry for entry in entries if entry["logger"] == "uvicorn.access"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_until_serving(
    url: str, server: "subprocess.Popen[bytes]", log: Path, *, seconds: float = 30
) -> None:
    """Polls `url` until it answers 200. Fails with the end of the server's output if the
    server exits first or does not answer within `seconds`. One client for the whole wait:
    each new one would load the TLS roots again, CPU the starting server needs. It is closed
    before this returns, so the server holds no connection of the wait's."""
    deadline = time.monotonic() + seconds
    with httpx.Client(timeout=1) as http:
        while server.poll() is None and time.monotonic() < deadline:
            try:
                if http.get(url).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.02)
    state = "exited" if server.poll() is not None else f"did not answer within {seconds} s"
    output = log.read_text(errors="replace")[-3000:]
    pytest.fail(f"the server at {url} {state}:\n{output}")


@asynccontextmanager
async def serve(
    app: ASGIApp, *, lifespan: bool = False, port: int | None = None
) -> AsyncIterator[str]:
    """Serves an ASGI app with uvicorn on a real local port (a free one unless given), for
    the duration of the block."""
    port = port or free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_config=None, lifespan="on" if lifespan else "off"
    )
    server = _StoppableServer(config)
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.001)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop.set()
        await task


class _StoppableServer(uvicorn.Server):
    """uvicorn's server, stopped as soon as `stop` is set. uvicorn's own looks for should_exit
    on a 0.1 s tick, and its shutdown pauses 0.1 s, then polls its connections every 0.1 s:
    most tests here would spend more time waiting than working."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()

    async def main_loop(self) -> None:
        await self.on_tick(0)  # the Date header, set once: a test's server lives for moments
        await self.stop.wait()

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Ctrl-C still stops the server, as it does uvicorn's own loop.
        super().handle_exit(sig, frame)
        self._loop.call_soon_threadsafe(self.stop.set)

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        # As uvicorn's: no new connections, open ones closed once their response is sent,
        # then the lifespan's shutdown; only the waits are shorter.
        for server in self.servers:
            server.close()
        for connection in list(self.server_state.connections):
            connection.shutdown()
        while self._busy():  # noqa: ASYNC110  # uvicorn sets no event when it is done
            await asyncio.sleep(0.001)
        for server in self.servers:
            await server.wait_closed()
        if not self.force_exit:
            await self.lifespan.shutdown()

    def _busy(self) -> bool:
        """Whether connections or tasks are still open, and nobody asked to force the exit."""
        busy = bool(self.server_state.connections or self.server_state.tasks)
        return busy and not self.force_exit


@asynccontextmanager
async def app_client(settings: Settings) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    """A started app (lifespan run) and an HTTP client talking to it in-process."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield app, client
