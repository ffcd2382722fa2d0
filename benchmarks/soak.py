"""Soak: the all-on service under many concurrent clients for a while, with its real backing
services and a job worker. It must answer every request, hold no request past its own deadline
and keep its memory flat.

    uv run --group bench python benchmarks/soak.py [--clients 64] [--seconds 60]

Renders the all-on project (auth, cache, jobs, metrics, Docker) and builds it with
`uv sync --no-dev`; migrates a new database on the local PostgreSQL (dropped afterwards) and
adds `--users` users with the project's own CLI; starts the service (one uvicorn worker, the
embedded PRSM engine, the local Redis under a key prefix of the run, deleted afterwards) and a
job worker (`taskiq worker <package>.worker:broker --workers 1`, as the project's README runs
it), both on 127.0.0.1; logs every user in; then runs `--clients` closed-loop clients for
`--seconds`. Each client, on its own keep-alive connection, picks an action at random (fixed
seed) with the weights of MIX, for the next user in turn:

- `POST /ai/query` asking the user's repeated question (a cache hit but for the first time),
  or a question never asked before (a miss);
- `POST /ai/stream` with a new question, read to its last event, which must be `end`;
- `POST /ai/jobs`, then `GET /ai/jobs/{id}` every 0.2 s until the job has completed;
- `GET /health/ready`, `GET /metrics`, and now and then `POST /auth/token` (a new token that
  the user's next requests carry).

Every response is counted. An error is any status other than the route's success (every 4xx
and 5xx: with 1e9 FTNS of quota per user, users in turn and a prompt of a few tokens no quota
or FTNS runs out, so a 402 or 429 is a fault too), a transport error or client timeout, a
body of the wrong shape, a stream that does not end with `end`, and a job that failed or was
not done within the deadline. The server's and the worker's resident memory are read every
second. The run fails on any error, on any request (or job) that took longer than the
service's own deadline (`PRSM_TIMEOUT_SECONDS`, 30 s by default: nothing may hang), and on
memory growth after the warm-up above `--max-growth-mib` (16 MiB) in either process.
Growth is the lowest RSS over the last `--window` seconds of load minus the lowest over the
`--window` seconds after the first `--warm-up` seconds (lazy imports, pools and caches filled).
The floor, not a median: each login maps argon2's 64 MiB for the second or so it takes, so with
logins overlapping a reading is as likely to carry one (or two) as not, and medians of the
same flat run moved by up to 64 MiB between runs. What leaks is never given back, so it
raises the floor.

Writes benchmarks/results/soak.json and soak.png (`--output` elsewhere).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import load
from common import (
    PIN,
    RESULTS_DIR,
    machine,
    pin_running,
    pin_to,
    pyplot,
    relative,
    table,
    warn_if_busy,
)
from services import (
    BENCH_PASSWORD,
    Backing,
    Project,
    Service,
    build,
    check_redis,
    cpu_seconds,
    free_port,
    http,
    login,
    rss_mib,
    running,
    start,
    user_name,
)

# Relative weights of the actions a client picks from.
MIX = {
    "query_repeat": 45,
    "query_new": 12,
    "stream": 12,
    "job": 6,
    "ready": 10,
    "metrics": 8,
    "login": 1,
}
# The routes, in the order of the table.
ROUTES = (
    "POST /ai/query (repeated)",
    "POST /ai/query (new)",
    "POST /ai/stream",
    "POST /ai/jobs",
    "GET /ai/jobs/{id}",
    "GET /health/ready",
    "GET /metrics",
    "POST /auth/token",
)
JOB_POLL_SECONDS = 0.2
# A client waits this much longer than the service's own deadline before it gives up on a
# request, so that a slow answer is still measured and only a hang is cut off.
CLIENT_GRACE_SECONDS = 10.0
# The embedded engine grants each PRSM user 100 FTNS, per process (the service and the worker
# each have their own engine). A new question costs about 0.06; users are taken in turn, and
# each must stay well below its grant.
WELCOME_FTNS = 100.0
BUDGET_SHARE = 0.5
JSON_HEADERS = {"Content-Type": "application/json"}
FORM_HEADERS = {"Content-Type": "application/x-www-form-urlencoded"}


# --- one keep-alive connection per client ----------------------------------------------------


class TransportError(Exception):
    """No complete answer: refused, reset, closed early, malformed, or too slow."""


class Connection:
    """One keep-alive connection to the service, opened again after a failure."""

    def __init__(self, host: str, port: int, timeout: float) -> None:
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            base_url=f"http://{host}:{port}",
            timeout=timeout,
            limits=httpx.Limits(max_connections=1),
        )

    async def request(
        self,
        method: str,
        path: str,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
    ) -> httpx.Response:
        # httpx's timeout is per read; a whole exchange must not take longer either.
        try:
            async with asyncio.timeout(self.timeout):
                return await self._client.request(method, path, headers=headers, content=body)
        except TimeoutError as exc:
            raise TransportError(f"no answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise TransportError(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        await self._client.aclose()


# --- what the clients record ----------------------------------------------------------------


@dataclass
class Record:
    """Every response, per route and per second of the run."""

    started: float
    latencies: dict[str, list[float]] = field(default_factory=lambda: {r: [] for r in ROUTES})
    errors: Counter[str] = field(default_factory=Counter)
    statuses: dict[str, Counter[int]] = field(default_factory=dict)
    error_samples: list[dict[str, Any]] = field(default_factory=list)
    per_second: dict[int, list[float]] = field(default_factory=dict)
    errors_per_second: Counter[int] = field(default_factory=Counter)
    job_turnarounds: list[float] = field(default_factory=list)
    jobs: Counter[str] = field(default_factory=Counter)
    cache: Counter[str] = field(default_factory=Counter)
    ready: Counter[str] = field(default_factory=Counter)
    # FTNS charged per (engine, user): the service's engine and the worker's are separate.
    spent: defaultdict[tuple[str, str], float] = field(default_factory=lambda: defaultdict(float))

    def response(self, route: str, seconds: float, status: int | None, error: str | None) -> None:
        now = time.monotonic()
        second = int(now - self.started)
        self.latencies[route].append(seconds)
        self.statuses.setdefault(route, Counter())[status or 0] += 1
        self.per_second.setdefault(second, []).append(seconds)
        if error is not None:
            self.errors[route] += 1
            self.errors_per_second[second] += 1
            if len(self.error_samples) < 50:
                self.error_samples.append(
                    {
                        "at_s": round(now - self.started, 2),
                        "route": route,
                        "status": status,
                        "error": error[:300],
                    }
                )

    @property
    def requests(self) -> int:
        return sum(len(v) for v in self.latencies.values())

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


@dataclass
class User:
    name: str
    headers: dict[str, str]


class Client:
    """One closed-loop client: an action, then the next, until the deadline."""

    def __init__(
        self,
        index: int,
        connection: Connection,
        users: list[User],
        turn: Iterator[int],
        record: Record,
        run: str,
        seed: int,
        job_deadline: float,
    ) -> None:
        self.index = index
        self.http = connection
        self.users = users
        self.turn = turn
        self.record = record
        self.run = run
        self.random = random.Random(seed * 1000 + index)
        self.job_deadline = job_deadline
        self.asked = 0

    async def loop(self, deadline: float) -> None:
        actions, weights = list(MIX), list(MIX.values())
        try:
            while time.monotonic() < deadline:
                action = self.random.choices(actions, weights)[0]
                user = self.users[next(self.turn) % len(self.users)]
                try:
                    await getattr(self, action)(user)
                except (ValueError, KeyError, TypeError) as exc:
                    # An answer with the right status that this client could not read.
                    self.bad_body(action, f"unreadable answer: {exc!r}")
        finally:
            await self.http.close()

    def new_prompt(self) -> str:
        # A few tokens, unique to the run, client and request: a cache miss at about 0.06 FTNS.
        self.asked += 1
        return f"{self.run} {self.index}x{self.asked}+1"

    async def call(
        self,
        route: str,
        method: str,
        path: str,
        headers: dict[str, str],
        body: bytes = b"",
        expect: int = 200,
    ) -> httpx.Response | None:
        """One request, recorded; the answer when it has the expected status, else None."""
        started = time.monotonic()
        try:
            answer = await self.http.request(method, path, headers, body)
        except TransportError as exc:
            self.record.response(route, time.monotonic() - started, None, str(exc))
            return None
        elapsed = time.monotonic() - started
        if answer.status_code != expect:
            detail = answer.text[:200]
            self.record.response(
                route, elapsed, answer.status_code, f"{answer.status_code} {detail}"
            )
            return None
        self.record.response(route, elapsed, answer.status_code, None)
        return answer

    def bad_body(self, route: str, why: str) -> None:
        """A response with the right status but the wrong content: counted as an error."""
        self.record.errors[route] += 1
        self.record.errors_per_second[int(time.monotonic() - self.record.started)] += 1
        if len(self.record.error_samples) < 50:
            self.record.error_samples.append({"route": route, "error": why[:300]})

    async def ask(self, user: User, route: str, prompt: str) -> None:
        body = json.dumps({"prompt": prompt}).encode()
        answer = await self.call(route, "POST", "/ai/query", {**JSON_HEADERS, **user.headers}, body)
        if answer is None:
            return
        try:
            data = answer.json()
            self.record.cache["hit" if data["from_cache"] else "miss"] += 1
            self.record.spent["service", user.name] += float(data["cost"])
            if not data["answer"]:
                raise ValueError("empty answer")
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_body(route, f"query answer unreadable: {exc!r}")

    async def query_repeat(self, user: User) -> None:
        await self.ask(user, "POST /ai/query (repeated)", "What is 2+2?")

    async def query_new(self, user: User) -> None:
        await self.ask(user, "POST /ai/query (new)", self.new_prompt())

    async def stream(self, user: User) -> None:
        route = "POST /ai/stream"
        body = json.dumps({"prompt": self.new_prompt()}).encode()
        answer = await self.call(
            route, "POST", "/ai/stream", {**JSON_HEADERS, **user.headers}, body
        )
        if answer is None:
            return
        events = re.findall(r"^event: *(\S+)", answer.text, re.MULTILINE)
        if not events or events[0] != "start" or events[-1] != "end":
            self.bad_body(route, f"stream events {events[:3]}...{events[-2:]}")
            return
        with contextlib.suppress(ValueError, KeyError, IndexError, TypeError):
            last = answer.text.strip().rsplit("data:", 1)[1]
            self.record.spent["service", user.name] += float(json.loads(last)["ftns_charged"])

    async def job(self, user: User) -> None:
        body = json.dumps({"prompt": self.new_prompt()}).encode()
        submitted = time.monotonic()
        answer = await self.call(
            "POST /ai/jobs", "POST", "/ai/jobs", {**JSON_HEADERS, **user.headers}, body, 202
        )
        if answer is None:
            return
        self.record.jobs["submitted"] += 1
        try:
            job_id = answer.json()["job_id"]
        except (ValueError, KeyError, TypeError) as exc:
            self.bad_body("POST /ai/jobs", f"job answer unreadable: {exc!r}")
            return
        route = "GET /ai/jobs/{id}"
        while True:
            await asyncio.sleep(JOB_POLL_SECONDS)
            polled = await self.call(route, "GET", f"/ai/jobs/{job_id}", user.headers)
            if polled is None:
                self.record.jobs["lost"] += 1
                return
            try:
                state = polled.json()
                status = state["status"]
            except (ValueError, KeyError, TypeError) as exc:
                self.bad_body(route, f"job state unreadable: {exc!r}")
                return
            if status == "completed":
                turnaround = time.monotonic() - submitted
                self.record.jobs["completed"] += 1
                self.record.job_turnarounds.append(turnaround)
                self.record.spent["worker", user.name] += float(state["result"]["cost"])
                if turnaround > self.job_deadline:
                    self.bad_body(route, f"job {job_id} took {turnaround:.1f} s")
                return
            if status == "failed":
                self.record.jobs["failed"] += 1
                self.bad_body(route, f"job {job_id} failed: {state['error']}")
                return
            if time.monotonic() - submitted > self.job_deadline:
                self.record.jobs["not done"] += 1
                self.bad_body(route, f"job {job_id} still {status} after the deadline")
                return

    async def ready(self, user: User) -> None:
        answer = await self.call("GET /health/ready", "GET", "/health/ready", {})
        if answer is not None:
            self.record.ready[answer.json()["status"]] += 1

    async def metrics(self, user: User) -> None:
        answer = await self.call("GET /metrics", "GET", "/metrics", {})
        if answer is not None and "http_requests_total" not in answer.text:
            self.bad_body("GET /metrics", "no http_requests_total in the scrape")

    async def login(self, user: User) -> None:
        form = urlencode({"username": user.name, "password": BENCH_PASSWORD}).encode()
        answer = await self.call("POST /auth/token", "POST", "/auth/token", FORM_HEADERS, form)
        if answer is not None:
            user.headers = {"Authorization": f"Bearer {answer.json()['access_token']}"}


# --- the processes --------------------------------------------------------------------------


def children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    with contextlib.suppress(OSError):
        return [int(p) for p in path.read_text().split()]
    return []


@dataclass
class Worker:
    """The project's job worker: taskiq's supervising process and its one worker process."""

    process: subprocess.Popen[bytes]
    log: Path
    metrics_port: int

    @property
    def pid(self) -> int:
        """The process that runs the jobs (the supervisor's child)."""
        found = children(self.process.pid)
        if len(found) != 1:
            raise RuntimeError(f"expected one taskiq worker process, found {found}")
        return found[0]

    def wait_ready(self, timeout: float = 60) -> None:
        """The worker has opened its services once it serves its own metrics."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the job worker exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                if http(f"http://127.0.0.1:{self.metrics_port}/")[0] == 200:
                    return
            time.sleep(0.2)
        raise RuntimeError(f"the job worker did not start:\n{self.log.read_text()[-3000:]}")

    def metric(self, name: str) -> float:
        _, body = http(f"http://127.0.0.1:{self.metrics_port}/")
        match = re.search(rf"^{name} (\S+)$", body.decode(), re.MULTILINE)
        return float(match.group(1)) if match else 0.0

    def stop(self) -> None:
        """SIGTERM: taskiq stops taking jobs, finishes those it has, and exits."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start_worker(project: Project, env: dict[str, str], logs: Path) -> Worker:
    log = logs / "worker.log"
    with log.open("wb") as handle:
        process = subprocess.Popen(
            [
                str(project.path / ".venv" / "bin" / "taskiq"),
                "worker",
                f"{project.package}.worker:broker",
                "--workers",
                "1",
            ],
            cwd=project.path,
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=lambda: pin_to(0),
        )
    worker = Worker(process, log, int(env["METRICS_WORKER_PORT"]))
    try:
        worker.wait_ready()
    except BaseException:
        worker.stop()
        raise
    return worker


def scraped(text: str) -> dict[str, float]:
    """What the service counted itself, from its /metrics: requests by status class, cache
    lookups that failed or timed out, and PRSM calls by outcome."""
    totals: defaultdict[str, float] = defaultdict(float)
    for line in text.splitlines():
        match = re.match(r"^(\w+)(?:\{(.*)\})? (\S+)$", line)
        if match is None:
            continue
        name, labels, value = match.group(1), match.group(2) or "", float(match.group(3))
        found = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if name == "http_requests_total":
            totals[f"http {found.get('status')}"] += value
        elif name in ("cache_errors_total", "jobs_enqueued_total"):
            totals[name.removesuffix("_total").replace("_", " ")] += value
        elif name in ("cache_queries_total", "prsm_queries_total"):
            key = name.removesuffix("_queries_total")
            totals[f"{key} {found.get('result') or found.get('outcome')}"] += value
    return dict(sorted(totals.items()))


def logged_errors(log: Path) -> list[str]:
    """The service's JSON log lines at ERROR or worse, taskiq's own, and any traceback."""
    markers = ("[ERROR", "[CRITICAL", "Traceback")
    lines = log.read_text(errors="replace").splitlines()
    return [
        line[:300]
        for line in lines
        if json_level(line) in ("ERROR", "CRITICAL") or any(marker in line for marker in markers)
    ]


def json_level(line: str) -> str | None:
    """The level of a JSON log line, however compactly it is written; None for other lines."""
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return entry.get("level") if isinstance(entry, dict) else None


# --- the run --------------------------------------------------------------------------------


async def soak(
    service: Service,
    worker: Worker,
    users: list[User],
    args: argparse.Namespace,
    request_timeout: float,
) -> tuple[Record, list[dict[str, Any]], dict[str, float]]:
    record = Record(started=time.monotonic())
    deadline = record.started + args.seconds
    run = uuid.uuid4().hex[:6]
    turn = iter(range(1 << 62))
    worker_pid = worker.pid
    samples: list[dict[str, Any]] = []
    lag = {"max_s": 0.0}

    async def sample() -> None:
        """Every second: both processes' RSS, and how late this loop woke (its own load)."""
        tick = record.started
        while True:
            tick += 1
            await asyncio.sleep(max(0.0, tick - time.monotonic()))
            late = time.monotonic() - tick
            lag["max_s"] = max(lag["max_s"], late)
            try:
                server_mib, worker_mib = service.rss_mib(), rss_mib(worker_pid)
            except (OSError, RuntimeError) as exc:
                record.errors["a process exited"] += 1
                record.error_samples.append({"route": "-", "error": f"process gone: {exc!r}"})
                return
            samples.append(
                {
                    "t": round(time.monotonic() - record.started, 2),
                    "server_mib": round(server_mib, 2),
                    "worker_mib": round(worker_mib, 2),
                    "requests": record.requests,
                    "errors": record.error_count,
                    "loop_lag_ms": round(late * 1000, 1),
                }
            )

    clients = [
        Client(
            i,
            Connection("127.0.0.1", service.port, request_timeout + CLIENT_GRACE_SECONDS),
            users,
            turn,
            record,
            run,
            args.seed,
            request_timeout,
        )
        for i in range(args.clients)
    ]
    sampler = asyncio.create_task(sample())
    cpu = time.process_time()
    server_cpu = service.cpu_seconds()
    worker_cpu = cpu_seconds(worker_pid)
    # Every request is bounded, and a job is given up after the deadline: so is the run.
    async with asyncio.timeout(args.seconds + 3 * (request_timeout + CLIENT_GRACE_SECONDS)):
        await asyncio.gather(*(c.loop(deadline) for c in clients))
    elapsed = time.monotonic() - record.started
    load_cpu = time.process_time() - cpu
    server_cpu = service.cpu_seconds() - server_cpu
    worker_cpu = cpu_seconds(worker_pid) - worker_cpu
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    generator = {
        "seconds": round(elapsed, 2),
        "cpu_share_of_a_core": round(load_cpu / elapsed, 2),
        "max_loop_lag_ms": round(lag["max_s"] * 1000, 1),
        "server_cpu_share": round(server_cpu / elapsed, 2),
        "worker_cpu_share": round(worker_cpu / elapsed, 2),
    }
    return record, samples, generator


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1)]


def memory_verdict(
    samples: list[dict[str, Any]], key: str, args: argparse.Namespace
) -> dict[str, Any]:
    loaded = [s for s in samples if s["t"] <= args.seconds + 0.5]
    warm = [s[key] for s in loaded if args.warm_up < s["t"] <= args.warm_up + args.window]
    end = [s[key] for s in loaded if s["t"] > args.seconds - args.window]
    after = [s for s in loaded if s["t"] > args.warm_up]
    warm_mib = min(warm)
    end_mib = min(end)
    # Theil-Sen: the median of the slopes between every two readings, which the few readings
    # taken during a login do not pull about.
    pairs = [
        (b[key] - a[key]) / (b["t"] - a["t"])
        for i, a in enumerate(after)
        for b in after[i + 1 :]
        if b["t"] > a["t"]
    ]
    slope = statistics.median(pairs) if pairs else 0.0
    growth = round(end_mib - warm_mib, 1)
    return {
        "start_mib": round(loaded[0][key], 1),
        "warm_mib": round(warm_mib, 1),
        "end_mib": round(end_mib, 1),
        "peak_mib": round(max(s[key] for s in loaded), 1),
        "growth_after_warm_up_mib": growth,
        "slope_after_warm_up_mib_per_min": round(slope * 60, 2),
        "limit_mib": args.max_growth_mib,
        "flat": growth <= args.max_growth_mib,
    }


def route_rows(record: Record) -> list[dict[str, Any]]:
    rows = []
    for route in ROUTES:
        latencies = record.latencies[route]
        rows.append(
            {
                "route": route,
                "requests": len(latencies),
                "errors": record.errors[route],
                "statuses": {str(k): v for k, v in sorted(record.statuses.get(route, {}).items())},
                "p50_ms": round(percentile(latencies, 0.50) * 1000, 1),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "max_ms": round(max(latencies, default=0.0) * 1000, 1),
            }
        )
    return rows


def users_needed(args: argparse.Namespace) -> int:
    """Enough users that none spends more than BUDGET_SHARE of its grant in either engine, at
    a generous 150 new questions per second (over twice what one service answers) of 0.08 FTNS
    each (measured: 0.06)."""
    spend = args.seconds * 150 * 0.08
    return max(args.clients, math.ceil(spend / (WELCOME_FTNS * BUDGET_SHARE)))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=60, help="length of the load")
    parser.add_argument("--warm-up", type=float, default=10, help="seconds before memory counts")
    parser.add_argument("--window", type=float, default=10, help="seconds of each RSS floor")
    parser.add_argument(
        "--max-growth-mib",
        type=float,
        default=16.0,
        help="RSS growth after the warm-up that fails the run, per process",
    )
    parser.add_argument("--users", type=int, default=0, help="default: enough for --seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL of the service and worker")
    parser.add_argument(
        "--output", type=Path, default=RESULTS_DIR, help="where soak.json and soak.png go"
    )
    parser.add_argument(
        "--keep-logs", type=Path, help="copy the server's and the worker's logs to this directory"
    )
    args = parser.parse_args()
    if args.seconds < args.warm_up + 2 * args.window:
        parser.error("--seconds must leave two --window lengths after the warm-up")
    users = args.users or users_needed(args)
    # The service's own deadline for one PRSM exchange: no request should take longer.
    request_timeout = 30.0

    check_redis()
    warn_if_busy()
    print(
        f"soak: {args.clients} clients for {args.seconds:g} s against the all-on service,"
        f" {users} users",
        flush=True,
    )
    report: dict[str, Any]
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        workdir = Path(tmp)
        logs = workdir / "logs"
        logs.mkdir()
        print("building all-on ...", flush=True)
        project = build("all-on", True, workdir)
        backing = Backing(workdir)
        try:
            print(f"migrating the user database and adding {users} users ...", flush=True)
            env = backing.env_for(project, args.log_level, "postgres", users)
            env["PRSM_TIMEOUT_SECONDS"] = f"{request_timeout:g}"
            env["METRICS_WORKER_HOST"] = "127.0.0.1"
            env["METRICS_WORKER_PORT"] = str(free_port())
            # On every core while its users log in (argon2, a hash per login), on core 0 once
            # the load starts.
            service = start(
                "all-on",
                project.python,
                f"{project.package}.main:create_app",
                project.path,
                env,
                "/health",
                logs,
                pinned=False,
            )
            with running(service):
                load.check_loopback(service.url)
                worker = start_worker(project, env, logs)
                try:
                    tokens = login(service, users, parallel=4)
                    pin_running(service.process.pid, 0)
                    people = [User(user_name(i), tokens[i]) for i in range(users)]
                    print("running ...", flush=True)
                    saved = os.sched_getaffinity(0) if PIN else None
                    pin_to(1)
                    try:
                        record, samples, generator = asyncio.run(
                            soak(service, worker, people, args, request_timeout)
                        )
                    finally:
                        if saved is not None:
                            os.sched_setaffinity(0, saved)
                    time.sleep(2)
                    idle = {
                        "server_mib": round(service.rss_mib(), 1),
                        "worker_mib": round(rss_mib(worker.pid), 1),
                    }
                    worker_jobs = {
                        "completed": worker.metric("jobs_completed_total"),
                        "failed": worker.metric("jobs_failed_total"),
                    }
                    status, body = http(service.url + "/metrics")
                    service_counted = scraped(body.decode()) if status == 200 else {}
                finally:
                    worker.stop()
            log_errors = {
                "server": logged_errors(service.log),
                "worker": logged_errors(worker.log),
            }
            if args.keep_logs:
                args.keep_logs.mkdir(parents=True, exist_ok=True)
                for log in (service.log, worker.log):
                    shutil.copy(log, args.keep_logs / f"soak-{log.name}")
        finally:
            backing.cleanup()

    report = summarize(
        args,
        users,
        request_timeout,
        record,
        samples,
        generator,
        idle,
        worker_jobs,
        service_counted,
        log_errors,
    )
    print_report(report)
    args.output.mkdir(parents=True, exist_ok=True)
    json_path = args.output / "soak.json"
    json_path.write_text(json.dumps(report, indent=2) + "\n")
    chart_path = chart(report, args.output / "soak.png")
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    if not report["passed"]:
        print("\nSOAK FAILED: " + "; ".join(c["check"] for c in report["checks"] if not c["met"]))
        return 1
    print("\nsoak passed")
    return 0


def summarize(
    args: argparse.Namespace,
    users: int,
    request_timeout: float,
    record: Record,
    samples: list[dict[str, Any]],
    generator: dict[str, float],
    idle: dict[str, float],
    worker_jobs: dict[str, float],
    service_counted: dict[str, float],
    log_errors: dict[str, list[str]],
) -> dict[str, Any]:
    rows = route_rows(record)
    memory = {
        "server": {
            **memory_verdict(samples, "server_mib", args),
            "idle_after_mib": idle["server_mib"],
        },
        "worker": {
            **memory_verdict(samples, "worker_mib", args),
            "idle_after_mib": idle["worker_mib"],
        },
    }
    slowest = max(r["max_ms"] for r in rows) / 1000
    turnarounds = record.job_turnarounds
    jobs = {
        **dict(record.jobs),
        "worker_completed_total": worker_jobs["completed"],
        "worker_failed_total": worker_jobs["failed"],
        "turnaround_p50_ms": round(percentile(turnarounds, 0.5) * 1000, 1),
        "turnaround_p99_ms": round(percentile(turnarounds, 0.99) * 1000, 1),
        "turnaround_max_ms": round(max(turnarounds, default=0.0) * 1000, 1),
    }
    seconds = sorted(record.per_second)
    timeline = []
    for s in samples:
        second = int(s["t"]) - 1
        latencies = record.per_second.get(second, [])
        timeline.append(
            {
                **s,
                "rps": len(latencies),
                "p99_ms": round(percentile(latencies, 0.99) * 1000, 1),
                "errors_in_second": record.errors_per_second.get(second, 0),
            }
        )
    spent_max = max(record.spent.values(), default=0.0)
    checks = [
        {"check": "no errors", "value": record.error_count, "met": record.error_count == 0},
        {
            "check": f"no request over the service's {request_timeout:g} s deadline",
            "value": round(slowest, 2),
            "met": slowest <= request_timeout,
        },
        {
            "check": f"every job done within {request_timeout:g} s",
            "value": round(max(turnarounds, default=0.0), 2),
            "met": max(turnarounds, default=0.0) <= request_timeout
            and record.jobs["completed"] == record.jobs["submitted"],
        },
        *(
            {
                "check": f"{name} RSS growth after warm-up <= {args.max_growth_mib:g} MiB",
                "value": m["growth_after_warm_up_mib"],
                "met": m["flat"],
            }
            for name, m in memory.items()
        ),
        {
            "check": "the service counted no 5xx itself",
            "value": service_counted.get("http 5xx", 0),
            "met": bool(service_counted) and not service_counted.get("http 5xx"),
        },
        {
            "check": "every route exercised",
            "value": min(r["requests"] for r in rows),
            "met": all(r["requests"] for r in rows),
        },
        {
            "check": "no ERROR in the server's or worker's log",
            "value": sum(len(v) for v in log_errors.values()),
            "met": not any(log_errors.values()),
        },
    ]
    return {
        "benchmark": "soak",
        "machine": machine(),
        "clients": args.clients,
        "seconds": args.seconds,
        "warm_up_seconds": args.warm_up,
        "window_seconds": args.window,
        "users": users,
        "mix": MIX,
        "seed": args.seed,
        "request_timeout_s": request_timeout,
        "max_growth_mib": args.max_growth_mib,
        "requests": record.requests,
        "errors": record.error_count,
        "rps": round(record.requests / generator["seconds"], 1),
        "load_generator": {
            "tool": "asyncio HTTP/1.1, a keep-alive connection per client",
            "seconds": generator["seconds"],
            "cpu_share_of_a_core": generator["cpu_share_of_a_core"],
            "max_loop_lag_ms": generator["max_loop_lag_ms"],
        },
        "cpu_share_of_a_core": {
            "server": generator["server_cpu_share"],
            "worker": generator["worker_cpu_share"],
        },
        "routes": rows,
        "jobs": jobs,
        "cache": dict(record.cache),
        "readiness": dict(record.ready),
        "service_counted": service_counted,
        "ftns_max_spent_by_one_user_in_one_engine": round(spent_max, 2),
        "memory": memory,
        "log_errors": log_errors,
        "error_samples": record.error_samples,
        "checks": checks,
        "passed": all(c["met"] for c in checks),
        "seconds_with_requests": len(seconds),
        "timeline": timeline,
    }


def print_report(report: dict[str, Any]) -> None:
    print()
    print(
        table(
            ["route", "requests", "errors", "p50 ms", "p99 ms", "max ms"],
            [
                [r["route"], r["requests"], r["errors"], r["p50_ms"], r["p99_ms"], r["max_ms"]]
                for r in report["routes"]
            ],
        )
    )
    jobs = report["jobs"]
    print(
        f"\n{report['requests']:,} requests in {report['load_generator']['seconds']:g} s"
        f" ({report['rps']:,.1f}/s), {report['errors']} errors; cache {report['cache']};"
        f" readiness {report['readiness']}"
    )
    print(f"the service counted: {report['service_counted']}")
    print(
        f"jobs: {jobs.get('submitted', 0)} submitted, {jobs.get('completed', 0)} completed"
        f" (worker counted {jobs['worker_completed_total']:g}), turnaround p50"
        f" {jobs['turnaround_p50_ms']:g} ms, p99 {jobs['turnaround_p99_ms']:g} ms,"
        f" max {jobs['turnaround_max_ms']:g} ms"
    )
    generator = report["load_generator"]
    print(
        f"CPU: server {report['cpu_share_of_a_core']['server']:.0%} of a core, worker"
        f" {report['cpu_share_of_a_core']['worker']:.0%}, load generator"
        f" {generator['cpu_share_of_a_core']:.0%},"
        f" loop lag up to {generator['max_loop_lag_ms']:g} ms;"
        " most FTNS one user spent in one engine:"
        f" {report['ftns_max_spent_by_one_user_in_one_engine']:g} of 100"
    )
    print()
    print(
        table(
            [
                "process",
                "start MiB",
                "floor after warm-up MiB",
                "floor at the end MiB",
                "growth MiB",
                "MiB/min",
                "peak MiB",
                "idle after MiB",
            ],
            [
                [
                    name,
                    m["start_mib"],
                    m["warm_mib"],
                    m["end_mib"],
                    m["growth_after_warm_up_mib"],
                    m["slope_after_warm_up_mib_per_min"],
                    m["peak_mib"],
                    m["idle_after_mib"],
                ]
                for name, m in report["memory"].items()
            ],
        )
    )
    print()
    print(
        table(
            ["check", "measured", "met"],
            [[c["check"], c["value"], "yes" if c["met"] else "NO"] for c in report["checks"]],
        )
    )
    for sample in report["error_samples"][:10]:
        print(f"  error: {sample}")
    for name, lines in report["log_errors"].items():
        for line in lines[:5]:
            print(f"  {name} log: {line}")


def chart(report: dict[str, Any], path: Path) -> Path:
    plt = pyplot()
    timeline = report["timeline"]
    ts = [s["t"] for s in timeline]
    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), sharex=True)
    warm, window, seconds = report["warm_up_seconds"], report["window_seconds"], report["seconds"]
    for key, name, color in (
        ("server_mib", "server", "#dd8452"),
        ("worker_mib", "worker", "#4c72b0"),
    ):
        memory = report["memory"][name]
        top.plot(
            ts,
            [s[key] for s in timeline],
            marker=".",
            markersize=3,
            linewidth=1,
            color=color,
            label=f"{name}: {memory['end_mib']:.1f} MiB at the end,"
            f" {memory['growth_after_warm_up_mib']:+.1f} after the warm-up",
        )
        # The two floors that growth is measured between.
        for (begin, stop), level in (
            ((warm, warm + window), memory["warm_mib"]),
            ((seconds - window, seconds), memory["end_mib"]),
        ):
            top.plot([begin, stop], [level, level], color=color, linewidth=4, alpha=0.5)
    top.axvspan(0, warm, color="#eeeeee", zorder=0, label="warm-up (bars: the floors compared)")
    top.set_ylabel("resident memory, MiB")
    peak = max(max(s["server_mib"], s["worker_mib"]) for s in timeline)
    top.set_ylim(0, peak * 1.2)
    top.text(
        warm + 1,
        peak * 1.1,
        "spikes: logins (argon2 maps 64 MiB for each, and gives it back)",
        fontsize=7,
        color="#555555",
    )
    top.legend(loc="lower right", fontsize=7)
    top.grid(axis="y", alpha=0.3)
    top.set_title(
        f"Soak: {report['clients']} clients for {report['seconds']:g} s against the all-on"
        f" service ({report['requests']:,} requests, {report['errors']} errors)"
    )
    bottom.bar(ts, [s["rps"] for s in timeline], width=0.8, color="#8c8c8c", label="requests/s")
    errors = [s["errors_in_second"] for s in timeline]
    if any(errors):
        bottom.bar(ts, errors, width=0.8, color="#c44e52", label="errors/s")
    bottom.set_ylabel("requests/s")
    bottom.set_xlabel("seconds")
    bottom.axvspan(0, warm, color="#eeeeee", zorder=0)
    latency = bottom.twinx()
    latency.plot(ts, [s["p99_ms"] for s in timeline], color="#55a868", label="p99 latency")
    latency.set_ylabel("p99 latency of the second, ms")
    latency.set_ylim(0, max(s["p99_ms"] for s in timeline) * 1.3 or 1)
    latency.spines["right"].set_visible(True)
    handles = bottom.get_legend_handles_labels()
    extra = latency.get_legend_handles_labels()
    bottom.legend(handles[0] + extra[0], handles[1] + extra[1], loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, bbox_inches="tight")
    return path


if __name__ == "__main__":
    sys.exit(main())
