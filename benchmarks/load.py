"""HTTP load against 127.0.0.1 only: wrk when it is installed, else a bounded asyncio client.

A `Scenario` is one kind of request. Its body may name `{n}`, a counter unique to each
request of a run (unique prompts: cache misses), `{user}`, which changes every `USER_EVERY`
requests (so that no embedded-engine user runs out of FTNS during a run), and `{run}`, a token
new for every run. `header_sets`, when given (one bearer token each), take turns request by
request, as the requests of a service's many users arrive mixed.
Both generators keep every connection busy for a fixed duration (a closed loop) and report
requests/s, p50 and p99 latency, and the answers that were not 2xx.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from common import PIN, pin_to

# The embedded engine grants each new user 100 FTNS and a benchmark query costs about 0.07.
USER_EVERY = 500
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


@dataclass(frozen=True)
class Scenario:
    name: str
    method: str
    path: str
    body: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    header_sets: tuple[Mapping[str, str], ...] = ()

    def for_run(self) -> Scenario:
        if self.body is None or "{run}" not in self.body:
            return self
        return dataclasses.replace(self, body=self.body.replace("{run}", uuid.uuid4().hex[:10]))

    @property
    def varies(self) -> bool:
        body = self.body or ""
        return "{n}" in body or "{user}" in body or len(self.header_sets) > 1

    def render_body(self, n: int) -> bytes:
        if self.body is None:
            return b""
        return self.body.replace("{n}", str(n)).replace("{user}", str(n // USER_EVERY)).encode()

    def headers_for(self, n: int) -> dict[str, str]:
        rotating = self.header_sets[n % len(self.header_sets)] if self.header_sets else {}
        return {**self.headers, **rotating}


@dataclass
class LoadResult:
    tool: str
    connections: int
    seconds: float
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def error_share(self) -> float:
        return (self.non_2xx + self.socket_errors) / max(self.requests, 1)


def check_loopback(base_url: str) -> None:
    host = urlsplit(base_url).hostname
    if host not in LOOPBACK:
        raise SystemExit(f"refusing to send load to {host!r}: only 127.0.0.1 is a target")


def default_tool() -> str:
    return "wrk" if shutil.which("wrk") else "python"


def run(
    tool: str,
    base_url: str,
    scenario: Scenario,
    connections: int,
    seconds: float,
    first: int = 0,
    *,
    pinned: bool = True,
) -> LoadResult:
    """One bounded run; request numbers `{n}` start after `first`. Pinned to core 1 unless
    told otherwise (a server of several workers has both cores)."""
    check_loopback(base_url)
    scenario = scenario.for_run()
    if tool == "wrk":
        return run_wrk(base_url, scenario, connections, seconds, first, pinned=pinned)
    saved = os.sched_getaffinity(0) if PIN and pinned else None
    if pinned:
        pin_to(1)
    try:
        return asyncio.run(run_python(base_url, scenario, connections, seconds, first))
    finally:
        if saved is not None:
            os.sched_setaffinity(0, saved)


# --- wrk --------------------------------------------------------------------------------------


def _lua_string(text: str) -> str:
    level = "="
    while f"]{level}]" in text:
        level += "="
    return f"[{level}[{text}]{level}]"


def _lua_body(template: str) -> str:
    """A Lua expression building the body from `n` and `user`."""
    parts: list[str] = []
    rest = template
    while rest:
        positions = [(rest.find(token), token) for token in ("{n}", "{user}") if token in rest]
        if not positions:
            parts.append(_lua_string(rest))
            break
        index, token = min(positions)
        if index:
            parts.append(_lua_string(rest[:index]))
        parts.append("n" if token == "{n}" else f"math.floor(n / {USER_EVERY})")
        rest = rest[index + len(token) :]
    return " .. ".join(parts) or '""'


def wrk_script(scenario: Scenario, first: int = 0) -> str:
    def lua_table(mapping: Mapping[str, str]) -> str:
        return (
            "{"
            + ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in mapping.items())
            + "}"
        )

    static = scenario.headers_for(0) if len(scenario.header_sets) == 1 else scenario.headers
    header_sets = ", ".join(lua_table({**scenario.headers, **h}) for h in scenario.header_sets)
    lines = [
        f"wrk.method = {_lua_string(scenario.method)}",
        *(f"wrk.headers[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in static.items()),
        f"local header_sets = {{{header_sets}}}",
        "local counter = 0",
        f"local base = {first}",
        "function setup(thread)",
        f"  thread:set('base', {first} + (thread_index or 0) * 1000000000)",
        "  thread_index = (thread_index or 0) + 1",
        "end",
        "function init(args)",
        "  base = wrk.thread:get('base') or base",
        "end",
    ]
    if scenario.varies:
        body = _lua_body(scenario.body) if scenario.body is not None else "nil"
        headers = "header_sets[n % #header_sets + 1]" if scenario.header_sets else "nil"
        lines += [
            "function request()",
            "  counter = counter + 1",
            "  local n = base + counter",
            f"  return wrk.format(nil, nil, {headers}, {body})",
            "end",
        ]
    elif scenario.body is not None:
        lines.append(f"wrk.body = {_lua_string(scenario.body)}")
    lines += [
        "function done(summary, latency, requests)",
        "  local e = summary.errors",
        '  io.write(string.format(\'BENCH_JSON {"requests": %d, "duration_us": %d, '
        '"p50_us": %d, "p99_us": %d, "mean_us": %f, "max_us": %d, "status_errors": %d, '
        '"socket_errors": %d}\\n\', summary.requests, summary.duration, '
        "latency:percentile(50), latency:percentile(99), latency.mean, latency.max, e.status, "
        "e.connect + e.read + e.write + e.timeout))",
        "end",
    ]
    return "\n".join(line for line in lines if line) + "\n"


def run_wrk(
    base_url: str,
    scenario: Scenario,
    connections: int,
    seconds: float,
    first: int = 0,
    *,
    pinned: bool = True,
) -> LoadResult:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(wrk_script(scenario, first))
    try:
        completed = subprocess.run(
            [
                "wrk",
                "-t1",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--timeout",
                "10s",
                "-s",
                script.name,
                base_url.rstrip("/") + scenario.path,
            ],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
            preexec_fn=(lambda: pin_to(1)) if pinned else None,
        )
    finally:
        Path(script.name).unlink()
    if completed.stderr.strip():
        raise RuntimeError(f"wrk's script failed: {completed.stderr.strip()}")
    line = next((x for x in completed.stdout.splitlines() if x.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration = data["duration_us"] / 1e6
    return LoadResult(
        tool="wrk",
        connections=connections,
        seconds=round(duration, 2),
        requests=data["requests"],
        rps=round(data["requests"] / duration, 1),
        p50_ms=round(data["p50_us"] / 1000, 2),
        p99_ms=round(data["p99_us"] / 1000, 2),
        mean_ms=round(data["mean_us"] / 1000, 2),
        max_ms=round(data["max_us"] / 1000, 2),
        non_2xx=data["status_errors"],
        socket_errors=data["socket_errors"],
    )


# --- the Python fallback ---------------------------------------------------------------------


async def run_python(
    base_url: str, scenario: Scenario, connections: int, seconds: float, first: int = 0
) -> LoadResult:
    """Keep `connections` HTTP/1.1 keep-alive connections busy for `seconds`."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    latencies: list[float] = []
    counter = iter(range(first + 1, 1 << 62))
    non_2xx = 0
    socket_errors = 0
    head = [f"{scenario.method} {scenario.path} HTTP/1.1", f"Host: {host}:{port}"]

    async def connection(deadline: float) -> None:
        nonlocal non_2xx, socket_errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.perf_counter() < deadline:
                n = next(counter)
                body = scenario.render_body(n)
                headers = [f"{k}: {v}" for k, v in scenario.headers_for(n).items()]
                lines = [*head, *headers, f"Content-Length: {len(body)}", "", ""]
                request = "\r\n".join(lines).encode()
                started = time.perf_counter()
                writer.write(request + body)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                if not 200 <= status < 300:
                    non_2xx += 1
        except (OSError, asyncio.IncompleteReadError, ValueError):
            socket_errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    deadline = started + seconds
    await asyncio.gather(*(connection(deadline) for _ in range(connections)))
    elapsed = time.perf_counter() - started
    latencies.sort()

    def pick(q: float) -> float:
        if not latencies:
            return 0.0
        return round(latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1000, 2)

    return LoadResult(
        tool="python",
        connections=connections,
        seconds=round(elapsed, 2),
        requests=len(latencies),
        rps=round(len(latencies) / elapsed, 1),
        p50_ms=pick(0.50),
        p99_ms=pick(0.99),
        mean_ms=round(sum(latencies) / max(len(latencies), 1) * 1000, 2),
        max_ms=round(latencies[-1] * 1000, 2) if latencies else 0.0,
        non_2xx=non_2xx,
        socket_errors=socket_errors,
    )


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = 0
    chunked = False
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "content-length":
            length = int(value)
        elif name.lower() == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    elif length:
        await reader.readexactly(length)
    return status
