"""Rendered services and the bare ceiling app, built with uv and run under the same uvicorn.

Every server runs as `python -m uvicorn --factory ... --host 127.0.0.1 --port N
--no-access-log` (one worker, uvloop and httptools as `uvicorn[standard]` picks them; several
workers through the project's `python -m <package>.serve`, as its image starts them): a
rendered service in its own project's environment with the embedded PRSM engine
(`PRSM_API_URL` empty), the bare app in the all-off project's. Redis features use the local
Redis with a database number and key prefix of their own, removed afterwards; auth gets a
SQLite file or a new database on the local PostgreSQL (dropped afterwards), migrated with
alembic, and benchmark users made with the project's own user CLI, each with a large quota.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import tomllib
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode, urlsplit

from common import answers, clean_env, find_uv, pin_to, render

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
# asyncpg URL of the local PostgreSQL server (a database is created in it per run).
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432")
UVICORN_FLAGS = ("--host", "127.0.0.1", "--no-access-log")

BARE_APP = '''\
"""The ceiling: FastAPI with one endpoint returning a small JSON object."""

from fastapi import FastAPI


def create_app() -> FastAPI:
    app = FastAPI()

    @app.get("/")
    async def root() -> dict[str, str]:
        return {"status": "ok"}

    return app
'''


# --- building -------------------------------------------------------------------------------


@dataclass
class Project:
    name: str
    path: Path
    answers: dict[str, Any]

    @property
    def package(self) -> str:
        packages = [p.name for p in (self.path / "src").iterdir() if (p / "__init__.py").is_file()]
        if len(packages) != 1:
            raise RuntimeError(f"expected one package under {self.path / 'src'}: {packages}")
        return packages[0]

    @property
    def python(self) -> Path:
        return self.path / ".venv" / "bin" / "python"

    def has(self, feature: str) -> bool:
        return bool(self.answers.get(feature))


def build(name: str, all_on: bool, workdir: Path) -> Project:
    """Render the project and `uv sync` its runtime dependencies (no dev group), compiled to
    bytecode as the image has them: start-up time is then what a deployment sees."""
    extra = answers(all_on)
    path = render(workdir / name, extra)
    for command in (
        [find_uv(), "sync", "--no-dev", "--compile-bytecode"],
        [str(path / ".venv" / "bin" / "python"), "-m", "compileall", "-q", "src"],
    ):
        completed = subprocess.run(
            command, cwd=path, env=clean_env(), capture_output=True, text=True, check=False
        )
        if completed.returncode:
            raise RuntimeError(f"{command[1]} failed for {name}:\n{completed.stderr[-3000:]}")
    return Project(name, path, extra)


def build_projects(wanted: list[str], workdir: Path) -> tuple[dict[str, Project], dict[str, str]]:
    """Build all-off (the bare app runs in its environment) and whichever else is wanted;
    a project that does not build is skipped with the reason."""
    projects: dict[str, Project] = {}
    skipped: dict[str, str] = {}
    for name in ["all-off", *(p for p in wanted if p != "all-off")]:
        print(f"building {name} ...", flush=True)
        try:
            projects[name] = build(name, name == "all-on", workdir)
        except RuntimeError as error:
            skipped[name] = str(error).splitlines()[0]
            print(f"  skipped: {error}", file=sys.stderr)
    if "all-off" not in projects:
        sys.exit("the all-off project did not build; nothing to measure")
    return projects, skipped


def variants(
    projects: Mapping[str, Project], wanted: list[str], databases: list[str]
) -> list[tuple[Project, str]]:
    """(project, user database) to run: a project with auth once per database."""
    return [
        (projects[name], database)
        for name in wanted
        if name in projects
        for database in (databases if projects[name].has("use_auth") else ["sqlite"])
    ]


# --- running --------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mib(pid: int) -> float:
    """A process's resident memory, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process (all its threads) has used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def settle(
    services: Sequence[Service], window: float = 0.1, idle_seconds: float = 0.01, limit: float = 5
) -> float:
    """Wait until the services have finished what an earlier run left them, and say how long
    that took. When wrk stops, a service it overloaded still answers the requests it had read
    (a SQLite cache miss run leaves some 100 ms of them); on the core the services share, that
    work would otherwise land in the next run's latencies. Idle: the services together use
    at most `idle_seconds` of CPU in one `window` (the kernel counts in 10 ms ticks)."""
    start = time.monotonic()
    used = sum(service.cpu_seconds() for service in services)
    while time.monotonic() - start < limit:
        time.sleep(window)
        now = sum(service.cpu_seconds() for service in services)
        if now - used <= idle_seconds:
            break
        used = now
    return time.monotonic() - start


@dataclass
class Service:
    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path
    ready_path: str
    header_sets: list[dict[str, str]] = field(default_factory=list)
    # The rendered project it runs ("all-off", "all-on"); "" for the bare app.
    project: str = ""
    # Its user database with auth ("sqlite", "postgres"); "" without.
    database: str = ""
    workers: int = 1

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def rss_mib(self) -> float:
        return round(rss_mib(self.pid), 1)

    def cpu_seconds(self) -> float:
        """User plus system CPU time the server process (all its threads) has used."""
        return cpu_seconds(self.pid)

    def wait_ready(self, timeout: float = 60, poll_seconds: float = 0.2) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log.read_text()[-3000:]}")
            with contextlib.suppress(OSError):
                status, _ = http(self.url + self.ready_path)
                if status == 200:
                    return
            time.sleep(poll_seconds)
        raise RuntimeError(
            f"{self.name} not ready after {timeout:.0f} s:\n{self.log.read_text()[-3000:]}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def start(
    name: str,
    python: Path,
    factory: str,
    cwd: Path,
    env: Mapping[str, str],
    ready_path: str,
    logs: Path,
    *,
    pinned: bool = True,
    poll_seconds: float = 0.2,
    server: str = "uvicorn",
) -> Service:
    """Start a server; pinned to core 0 unless told otherwise (several workers need both).
    `server` is the module run: uvicorn with `factory`, or a project's `<package>.serve`, which
    knows its factory. Returns once `ready_path` answers 200, asked every `poll_seconds`."""
    port = free_port()
    log = logs / f"{name}.log"
    handle = log.open("wb")
    app = ["--factory", factory] if server == "uvicorn" else []
    process = subprocess.Popen(
        [str(python), "-m", server, *app, *UVICORN_FLAGS, "--port", str(port)],
        cwd=cwd,
        env=dict(env),
        stdout=handle,
        stderr=subprocess.STDOUT,
        preexec_fn=(lambda: pin_to(0)) if pinned else None,
        # Its own process group: with several workers, stop() reaches them all.
        start_new_session=True,
    )
    handle.close()
    service = Service(name, process, port, log, ready_path)
    try:
        service.wait_ready(poll_seconds=poll_seconds)
    except BaseException:
        service.stop()
        raise
    return service


def start_bare(python: Path, workdir: Path, logs: Path) -> Service:
    app_dir = workdir / "bare"
    app_dir.mkdir(parents=True, exist_ok=True)
    (app_dir / "bench_bare.py").write_text(BARE_APP)
    env = clean_env(PYTHONPATH=str(app_dir))
    return start("bare", python, "bench_bare:create_app", app_dir, env, "/", logs)


@dataclass
class Backing:
    """The local Redis database and key prefix, and the user databases, of one run."""

    workdir: Path
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    postgres_databases: list[str] = field(default_factory=list)
    # One environment per project and user database: a service started again (more workers,
    # a start-up timing) finds its database migrated, its users made and its secret key.
    _envs: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)

    @property
    def key_prefix(self) -> str:
        return f"bench-{self.run_id}:"

    def env_for(
        self, project: Project, log_level: str, database: str, users: int = 0
    ) -> dict[str, str]:
        """The service's environment; with auth, the first call migrates its user database
        and makes `users` benchmark users (AUTH_USERS by default)."""
        key = (project.name, database)
        if key not in self._envs:
            env = clean_env(
                ENVIRONMENT="development",
                LOG_LEVEL=log_level,
                PRSM_API_URL="",
                REDIS_URL=REDIS_URL,
                REDIS_KEY_PREFIX=f"{self.key_prefix}{project.name}-{database}:",
            )
            if project.has("use_auth"):
                env.update(auth_env(project, self.workdir))
                if database == "postgres":
                    env["DATABASE_URL"] = self.postgres_database(f"{project.name}-{database}")
                prepare_auth(project, env, users or AUTH_USERS)
            self._envs[key] = env
        return dict(self._envs[key])

    def postgres_database(self, label: str) -> str:
        """A new database on the local PostgreSQL; dropped by `cleanup`."""
        name = f"bench_{self.run_id}_{len(self.postgres_databases)}"
        psql("CREATE DATABASE " + name)
        self.postgres_databases.append(name)
        return f"{POSTGRES_URL}/{name}"

    def cleanup(self) -> None:
        with contextlib.suppress(OSError):
            delete_prefix(REDIS_URL, self.key_prefix)
        for name in self.postgres_databases:
            with contextlib.suppress(OSError, subprocess.CalledProcessError):
                psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def start_project(
    project: Project,
    backing: Backing,
    logs: Path,
    log_level: str,
    database: str = "sqlite",
    *,
    workers: int = 1,
    pinned: bool | None = None,
    ready_path: str = "/health",
    poll_seconds: float = 0.2,
) -> Service:
    """Start a rendered project; with auth, its user database is SQLite or PostgreSQL.

    With several workers (WEB_CONCURRENCY, as the image takes it) the workers keep their
    metrics in a PROMETHEUS_MULTIPROC_DIR of their own, and the server is not pinned unless
    asked: they need both cores."""
    env = backing.env_for(project, log_level, database)
    name = project.name
    if project.has("use_auth"):
        name = f"{project.name} ({'PostgreSQL' if database == 'postgres' else 'SQLite'})"
    if workers > 1:
        env["WEB_CONCURRENCY"] = str(workers)
        name = f"{name}, {workers} workers"
        if project.has("use_prometheus"):
            directory = backing.workdir / f"metrics-{uuid.uuid4().hex[:8]}"
            directory.mkdir()
            env["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    service = start(
        name,
        project.python,
        f"{project.package}.main:create_app",
        project.path,
        env,
        ready_path,
        logs,
        pinned=workers == 1 if pinned is None else pinned,
        poll_seconds=poll_seconds,
        # Several workers as the image runs them: each on a socket of its own.
        server="uvicorn" if workers == 1 else f"{project.package}.serve",
    )
    service.project = project.name
    service.database = database if project.has("use_auth") else ""
    service.workers = workers
    if project.has("use_auth"):
        service.header_sets = login(service)
    return service


@contextlib.contextmanager
def running(*services: Service) -> Iterator[None]:
    try:
        yield
    finally:
        for service in services:
            service.stop()


# --- auth -------------------------------------------------------------------------------------

# Throwaway users in a throwaway database.
BENCH_PASSWORD = "bench-password-123"
BENCH_QUOTA = "1000000000"
# The embedded engine grants each PRSM user 100 FTNS, about 1,200 uncached queries: one user
# asks the repeated question, misses take the others in turn, request by request, so a run can
# make about 1,200 x (AUTH_USERS - 1) misses.
AUTH_USERS = int(os.environ.get("BENCH_AUTH_USERS", "49"))


def auth_env(project: Project, workdir: Path) -> dict[str, str]:
    database = workdir / f"{project.name}-auth.sqlite3"
    return {
        "DATABASE_URL": f"sqlite+aiosqlite:///{database}",
        "SECRET_KEY": uuid.uuid4().hex + uuid.uuid4().hex,
        "ACCESS_TOKEN_EXPIRE_MINUTES": "600",
    }


def user_name(index: int) -> str:
    return f"bench-{index}"


def user_cli(project: Project) -> tuple[str, str]:
    """Module and function of the project's own command (its `[project.scripts]` entry)."""
    scripts = tomllib.loads((project.path / "pyproject.toml").read_text())["project"]["scripts"]
    module, _, function = next(iter(scripts.values())).partition(":")
    return module, function


def prepare_auth(project: Project, env: Mapping[str, str], users: int = AUTH_USERS) -> None:
    """Migrate the database with alembic, then add the users with the project's own CLI: its
    entry point called once per user, the password on stdin, in one process per core, each
    making its share of the users (hashing their passwords is nearly all of the time)."""
    migrate = subprocess.run(
        [str(project.path / ".venv" / "bin" / "alembic"), "upgrade", "head"],
        cwd=project.path,
        env=dict(env),
        capture_output=True,
        text=True,
        check=False,
    )
    if migrate.returncode:
        raise RuntimeError(f"alembic upgrade head failed:\n{migrate.stderr[-2000:]}")
    module, function = user_cli(project)
    names = [user_name(i) for i in range(users)]

    def create(share: list[str]) -> subprocess.CompletedProcess[str]:
        code = (
            f"import sys\nfrom {module} import {function} as main\n"
            f"for name in {share!r}:\n"
            f"    if main(['create-user', name, '--quota', {BENCH_QUOTA!r}]):\n"
            "        sys.exit(1)\n"
        )
        return subprocess.run(
            [str(project.python), "-c", code],
            cwd=project.path,
            env=dict(env),
            input=f"{BENCH_PASSWORD}\n" * len(share),
            capture_output=True,
            text=True,
            check=False,
        )

    cores = os.cpu_count() or 1
    shares = [share for share in (names[core::cores] for core in range(cores)) if share]
    with ThreadPoolExecutor(len(shares)) as pool:
        created = list(pool.map(create, shares))
    failed = [done.stderr for done in created if done.returncode]
    if failed:
        raise RuntimeError(f"creating users failed:\n{failed[0][-2000:]}")


def login(service: Service, users: int = AUTH_USERS, parallel: int = 1) -> list[dict[str, str]]:
    """A bearer header per benchmark user, from the service's own /auth/token; `parallel`
    logins at a time (each verifies an argon2 hash: a service on more than one core does
    several at once)."""

    def header(i: int) -> dict[str, str]:
        form = urlencode({"username": user_name(i), "password": BENCH_PASSWORD}).encode()
        status, body = http(
            service.url + "/auth/token",
            form,
            {"Content-Type": "application/x-www-form-urlencoded"},
        )
        if status != 200:
            raise RuntimeError(f"login of {user_name(i)} failed: {status} {body[:300]!r}")
        return {"Authorization": f"Bearer {json.loads(body)['access_token']}"}

    with ThreadPoolExecutor(parallel) as pool:
        return list(pool.map(header, range(users)))


def http(
    url: str, body: bytes | None = None, headers: Mapping[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def redis_command(url: str, *args: str) -> Any:
    """One command over RESP on a fresh connection (enough for set-up and clean-up)."""
    parts = urlsplit(url)
    database = (parts.path or "/0").strip("/") or "0"
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), 5) as s:
        stream = s.makefile("rwb")
        for command in (("SELECT", database), args):
            stream.write(f"*{len(command)}\r\n".encode())
            for arg in command:
                data = arg.encode()
                stream.write(b"$%d\r\n%s\r\n" % (len(data), data))
        stream.flush()
        _read_reply(stream)
        return _read_reply(stream)


def _read_reply(stream: Any) -> Any:
    line = stream.readline().rstrip(b"\r\n")
    kind, rest = line[:1], line[1:]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise OSError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        size = int(rest)
        return None if size < 0 else stream.read(size + 2)[:-2]
    if kind == b"*":
        return [_read_reply(stream) for _ in range(int(rest))]
    raise OSError(f"unexpected Redis reply {line!r}")


def delete_prefix(url: str, prefix: str) -> int:
    deleted, cursor = 0, "0"
    while True:
        cursor_bytes, keys = redis_command(
            url, "SCAN", cursor, "MATCH", f"{prefix}*", "COUNT", "1000"
        )
        for start_at in range(0, len(keys), 500):
            deleted += redis_command(
                url, "DEL", *(k.decode() for k in keys[start_at : start_at + 500])
            )
        cursor = cursor_bytes.decode()
        if cursor == "0":
            return deleted


def psql(statement: str) -> None:
    """One statement on the local PostgreSQL, as its `postgres` user, with psql."""
    parts = urlsplit(POSTGRES_URL)
    subprocess.run(
        [
            "psql",
            "-h",
            parts.hostname or "127.0.0.1",
            "-p",
            str(parts.port or 5432),
            "-U",
            parts.username or "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-qc",
            statement,
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )


def check_redis() -> None:
    try:
        redis_command(REDIS_URL, "PING")
    except OSError as error:
        sys.exit(f"the local Redis at {REDIS_URL} does not answer ({error}); start it first")
