"""A real Docker engine for the template's image tests (test_docker_images.py): whether one
answers, the images the tests build, and small wrappers around `docker` that bound every
wait and label what they make, so that it can all be removed again.

On a machine without an engine the tests fail with one line that says so; with
TEMPLATE_SKIP_DOCKER_ENGINE=1 they are skipped, and say that too. `.ci/run` starts an engine
with ../shared/docker-offline/ where that folder exists, which reads the Dockerfiles and
compose files of one project per image shape to know which images to provide:

    python tests/docker_engine.py render DIRECTORY
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from baking import TEMPLATE_ROOT, Template, find_uv, write_cookiecutter_config

SKIP_VARIABLE = "TEMPLATE_SKIP_DOCKER_ENGINE"
# Set by .ci/run while it sets an engine up in the background: the file where that setup's
# exit status appears once it has ended.
SETUP_STATUS_VARIABLE = "TEMPLATE_DOCKER_SETUP_STATUS"
SETUP_TIMEOUT = 1800.0
# Every container and image the tests make carries this label, with the session's run id.
RUN_LABEL = "org.cookiecutter-fastapi-prsm.test-run"


# --- what the tests build -------------------------------------------------------------------


@dataclass(frozen=True)
class ImageShape:
    """A combination whose image the tests build and run, with the most the layers above the
    base image may add up to."""

    name: str
    toggles: tuple[tuple[str, bool], ...]
    python_version: str
    default_python: str
    budget_mib: int

    @property
    def id(self) -> str:
        if self.python_version == self.default_python:
            return self.name
        return f"{self.name}@py{self.python_version}"

    @property
    def answers(self) -> dict[str, Any]:
        return {**dict(self.toggles), "python_version": self.python_version}


# What the layers above python:*-slim may add up to. Measured: all-on 105.4 MiB on 3.11, 107.9
# on 3.13 and 108.6 on 3.12 (the dependencies; the project itself is 0.4), Docker alone 41.3.
# The budgets leave about 15% for dependency updates: going over one is a decision, not drift.
ALL_ON_BUDGET_MIB = 125
SMALLEST_BUDGET_MIB = 48


def image_shapes(template: Template, matrix: str) -> list[ImageShape]:
    """All on, on the default Python (`quick`) or on every offered one (`full`), and the
    smallest Docker-on combination: Docker and nothing else. Between them each feature's part
    of the Dockerfile and compose file (the metrics entrypoint, alembic.ini, the worker,
    migrate, postgres and redis services) is in one image and out of the other."""
    default = template.default_python
    pythons = template.python_versions if matrix == "full" else [default]
    everything = tuple((toggle, True) for toggle in template.toggles)
    docker_only = tuple((toggle, toggle == "use_docker") for toggle in template.toggles)
    shapes = [
        ImageShape("all-on", everything, python, default, ALL_ON_BUDGET_MIB) for python in pythons
    ]
    shapes.append(ImageShape("docker-only", docker_only, default, default, SMALLEST_BUDGET_MIB))
    return shapes


def render(template: Template, shape: ImageShape, output: Path, config: Path) -> Path:
    """The project of one shape, rendered under `output` as a user gets it."""
    from cookiecutter.main import cookiecutter

    output.mkdir(parents=True, exist_ok=True)
    return Path(
        cookiecutter(
            str(template.root),
            no_input=True,
            extra_context=shape.answers,
            output_dir=str(output),
            config_file=str(config),
        )
    )


def ensure_lock(project: Path) -> None:
    """The post-generation hook locks a Docker project when it finds uv on PATH; where it did
    not, `uv lock`, as the project's README says."""
    if (project / "uv.lock").exists():
        return
    result = _run([find_uv(), "lock", "--quiet"], timeout=600, cwd=project)
    if result.returncode != 0:
        raise DockerFailed(f"`uv lock` in {project.name} failed:\n{tail(result.stderr)}")


# --- is there an engine ---------------------------------------------------------------------


def engine_problem() -> str | None:
    """None when a Docker engine answers and compose v2 is there; else what is missing."""
    docker = shutil.which("docker")
    if docker is None:
        return "there is no `docker` command on PATH"
    try:
        info = _run([docker, "info", "--format", "{{.ServerVersion}}"], timeout=30)
        compose = _run([docker, "compose", "version", "--short"], timeout=30)
    except subprocess.TimeoutExpired as error:
        return f"`{' '.join(map(str, error.cmd))}` did not answer within {error.timeout:.0f} s"
    if info.returncode != 0:
        why = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info` ({why})"
    if compose.returncode != 0:
        return "`docker compose` (compose v2) is not installed"
    return None


def engine_setup_problem() -> str | None:
    """Where an engine is being set up in the background, wait until that is done: None once
    it succeeded (or when there is none), else why it did not."""
    status_file = os.environ.get(SETUP_STATUS_VARIABLE)
    if not status_file:
        return None
    deadline = time.monotonic() + SETUP_TIMEOUT
    while not Path(status_file).exists():
        if time.monotonic() > deadline:
            return f"the engine's setup did not end within {SETUP_TIMEOUT / 60:.0f} min"
        time.sleep(1)
    status = Path(status_file).read_text().strip()
    if status != "0":
        return f"the engine's setup exited {status} (.ci/run shows its output after the tests)"
    return None


def missing_engine_message(problem: str) -> str:
    return (
        f"Docker image tests: {problem}. Start a Docker engine (.ci/run uses "
        f"../shared/docker-offline/ where that folder exists), or set {SKIP_VARIABLE}=1 "
        "to skip these tests."
    )


def require_engine() -> None:
    """Returns once a Docker engine answers, waiting for the one .ci/run sets up in the
    background; skips with TEMPLATE_SKIP_DOCKER_ENGINE=1 and fails in one line without one."""
    if os.environ.get(SKIP_VARIABLE) == "1":
        pytest.skip(f"{SKIP_VARIABLE}=1: the tests that need a Docker engine are skipped")
    if problem := engine_setup_problem() or engine_problem():
        pytest.fail(missing_engine_message(problem), pytrace=False)


# --- running docker -------------------------------------------------------------------------


class DockerFailed(Exception):
    """A docker command failed or hung; the message carries the command and its output."""


def _run(
    argv: Sequence[str],
    *,
    timeout: float,
    input: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        input=input,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=dict(env) if env is not None else None,
        cwd=cwd,
        check=False,
    )


def tail(text: str, lines: int = 40) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Build:
    """One `docker build`: the image, how long it took, and what BuildKit did step by step."""

    tag: str
    image_id: str
    seconds: float
    log: str

    @property
    def steps(self) -> dict[str, bool]:
        """Each Dockerfile step (`[stage i/n] INSTRUCTION`) -> whether BuildKit took it from
        its cache. FROM lines are left out: they are never "built"."""
        names: dict[str, str] = {}
        cached: set[str] = set()
        for line in self.log.splitlines():
            if match := re.match(r"#(\d+) \[([\w-]+ \d+/\d+)\] (.*)", line):
                if not match.group(3).startswith("FROM "):
                    names[match.group(1)] = f"[{match.group(2)}] {match.group(3)}"
            elif match := re.match(r"#(\d+) CACHED\s*$", line):
                cached.add(match.group(1))
        return {name: number in cached for number, name in names.items()}

    def was_cached(self, text: str) -> bool | None:
        """Whether the step whose instruction contains `text` came from the cache (None: no
        such step)."""
        found = [cached for name, cached in self.steps.items() if text in name]
        return all(found) if found else None

    def rebuilt(self) -> list[str]:
        return [name for name, cached in self.steps.items() if not cached]


@dataclass
class Docker:
    """The docker commands of one test session. What it creates carries RUN_LABEL=run_id and
    a name that starts with `prefix`."""

    run_id: str
    env: dict[str, str] = field(default_factory=lambda: {**os.environ, "DOCKER_BUILDKIT": "1"})
    # When set, builds take this file's lock, one at a time across the session's workers.
    build_lock: Path | None = None

    @property
    def prefix(self) -> str:
        return f"prsm-template-test-{self.run_id}"

    @property
    def label(self) -> str:
        return f"{RUN_LABEL}={self.run_id}"

    def run(
        self,
        *args: str,
        timeout: float = 60,
        input: str | None = None,
        check: bool = True,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        argv = ["docker", *args]
        try:
            result = _run(argv, timeout=timeout, input=input, env=self.env, cwd=cwd)
        except subprocess.TimeoutExpired as error:
            raise DockerFailed(f"`{' '.join(argv)}` still running after {timeout:.0f} s") from error
        if check and result.returncode != 0:
            raise DockerFailed(
                f"`{' '.join(argv)}` exited {result.returncode}\n"
                f"{tail(result.stdout + result.stderr)}"
            )
        return result

    @contextmanager
    def one_build_at_a_time(self) -> Iterator[None]:
        """BuildKit shares identical steps between builds that run at once; a step shared
        with a `--no-cache` build is run again, and steps after it miss the cache too. So when
        builds are cold on purpose, they hold a lock (a no-op otherwise)."""
        if self.build_lock is None:
            yield
            return
        with self.build_lock.open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def build(
        self, context: Path, tag: str, *, no_cache: bool = False, timeout: float = 900
    ) -> Build:
        options = ["--no-cache"] if no_cache else []
        with self.one_build_at_a_time(), tempfile.TemporaryDirectory() as scratch:
            started = time.perf_counter()
            iidfile = Path(scratch) / "iid"
            result = self.run(
                "build",
                "--progress=plain",
                "--label",
                self.label,
                "--iidfile",
                str(iidfile),
                "--tag",
                tag,
                *options,
                str(context),
                timeout=timeout,
                check=False,
            )
            seconds = time.perf_counter() - started
            if result.returncode != 0:
                raise DockerFailed(
                    f"`docker build` of {context.name} exited {result.returncode}\n"
                    f"{tail(result.stdout + result.stderr, 60)}"
                )
            image_id = iidfile.read_text().strip()
        return Build(tag, image_id, round(seconds, 2), result.stdout + result.stderr)

    def inspect(self, kind: str, *names: str) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = json.loads(self.run(kind, "inspect", *names).stdout)
        return found

    def image(self, name: str, *, pull: bool = False) -> dict[str, Any]:
        """`docker image inspect`; with `pull`, an image that BuildKit used without storing it
        as an image of its own (a base image, on most engines) is pulled first."""
        if pull and self.run("image", "inspect", name, check=False).returncode != 0:
            self.run("pull", "--quiet", name, timeout=600)
        return self.inspect("image", name)[0]

    def unique_bytes(self, image_id: str) -> int:
        """The bytes of the image's layers that no other image on the engine has."""
        listing = self.run("system", "df", "--verbose", "--format", "{{json .Images}}", timeout=120)
        for image in json.loads(listing.stdout):
            if image_id.removeprefix("sha256:").startswith(image["ID"].removeprefix("sha256:")):
                return human_bytes(image["UniqueSize"])
        raise DockerFailed(f"`docker system df` does not list {image_id}")

    @contextmanager
    def container(self, name: str, image: str, *options: str) -> Iterator[Container]:
        """`docker run --detach` of `image` with `options`; removed again afterwards."""
        full_name = f"{self.prefix}-{name}"
        started = time.perf_counter()
        self.run("run", "--detach", "--name", full_name, "--label", self.label, *options, image)
        try:
            yield Container(self, full_name, started)
        finally:
            self.run("rm", "--force", "--volumes", full_name, check=False)

    def remove_images(self, *refs: str) -> None:
        self.run("image", "rm", "--force", *refs, check=False, timeout=120)

    def cleanup(self) -> None:
        """Whatever of this session is left: containers first, then images."""
        for kind in ("container", "image"):
            listed = self.run(
                kind, "ls", "--all", "--quiet", "--filter", f"label={self.label}", check=False
            )
            found = sorted(set(listed.stdout.split()))
            if found:
                self.run(kind, "rm", "--force", *found, check=False, timeout=120)


def human_bytes(text: str) -> int:
    """`403.4kB` -> 403400: the decimal units docker prints sizes in."""
    match = re.fullmatch(r"([\d.]+)\s*([kMGT]?B)", text.strip())
    if not match:
        raise ValueError(f"not a size: {text!r}")
    scale = {"B": 1, "kB": 10**3, "MB": 10**6, "GB": 10**9, "TB": 10**12}[match.group(2)]
    return round(float(match.group(1)) * scale)


@dataclass
class Container:
    docker: Docker
    name: str
    # When `docker run` was called (time.perf_counter()), if this session started it.
    started: float | None = None

    def state(self) -> dict[str, Any]:
        state: dict[str, Any] = self.docker.inspect("container", self.name)[0]["State"]
        return state

    def published(self, port: int) -> list[tuple[str, int]]:
        """Every host address and port that `port` of the container is published on."""
        ports = self.docker.inspect("container", self.name)[0]["NetworkSettings"]["Ports"] or {}
        return [
            (binding["HostIp"], int(binding["HostPort"]))
            for binding in ports.get(f"{port}/tcp") or []
        ]

    def exec(
        self, *argv: str, env: Mapping[str, str] | None = None, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        options = [f"--env={key}={value}" for key, value in (env or {}).items()]
        interactive = ["--interactive"] if input is not None else []
        return self.docker.run(
            "exec", *interactive, *options, self.name, *argv, input=input, check=False
        )

    def logs(self) -> str:
        result = self.docker.run("logs", self.name, check=False)
        return result.stdout + result.stderr

    def wait_for(self, what: str, condition: Any, timeout: float) -> float:
        """Seconds from `docker run` (or from now) until `condition()` is true; DockerFailed
        after `timeout`, or as soon as the container has stopped running."""
        waiting = time.perf_counter()
        since = self.started or waiting
        while time.perf_counter() - waiting < timeout:
            if condition():
                return round(time.perf_counter() - since, 2)
            if self.state()["Status"] != "running":
                raise DockerFailed(f"{self.name} stopped before {what}:\n{tail(self.logs())}")
            time.sleep(0.1)
        raise DockerFailed(f"{self.name}: no {what} within {timeout:.0f} s:\n{tail(self.logs())}")

    def health(self) -> str:
        return str((self.state().get("Health") or {}).get("Status", "none"))

    def stop(self, grace: float) -> tuple[float, int]:
        """`docker stop` with `grace` seconds before SIGKILL: (seconds it took, exit code)."""
        started = time.perf_counter()
        self.docker.run("stop", "--time", str(round(grace)), self.name, timeout=grace + 30)
        return round(time.perf_counter() - started, 2), int(self.state()["ExitCode"])


# --- talking to a published port ------------------------------------------------------------


@dataclass
class Response:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode(errors="replace")


def http(
    method: str,
    url: str,
    *,
    json_body: Any = None,
    form: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 30,
) -> Response:
    """One request with the standard library; any status is returned, never raised."""
    data = None
    sent = dict(headers or {})
    if json_body is not None:
        data = json.dumps(json_body).encode()
        sent["Content-Type"] = "application/json"
    elif form is not None:
        data = urllib.parse.urlencode(form).encode()
        sent["Content-Type"] = "application/x-www-form-urlencoded"
    request = urllib.request.Request(url, data=data, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return Response(response.status, response.read())
    except urllib.error.HTTPError as error:
        return Response(error.code, error.read())


def answers_http(url: str) -> bool:
    try:
        return http("GET", url, timeout=2).status == 200
    except OSError:
        return False


# --- the table at the end of the run --------------------------------------------------------


class ImageReport:
    """Collects what the image tests measured from their reports, prints one row per image
    shape at the end of the run and writes them to .results/docker-images.json."""

    COLUMNS = (
        ("size_mb", "size MB", "{:.0f}"),
        ("added_mib", "added MiB", "{:.1f}"),
        ("budget_mib", "budget", "{:.0f}"),
        ("first_build_s", "build s", "{:.1f}"),
        ("first_build", "first build", "{}"),
        ("rebuild_s", "rebuild s", "{:.1f}"),
        ("edit_build_s", "edit s", "{:.1f}"),
        ("edit_layer_kb", "edit KB", "{:.0f}"),
        ("health_s", "/health s", "{:.1f}"),
        ("healthy_s", "healthy s", "{:.1f}"),
        ("stop_s", "stop s", "{:.1f}"),
        ("exit", "exit", "{}"),
        ("up_wait_s", "up --wait s", "{:.1f}"),
        ("down_s", "down s", "{:.1f}"),
    )

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: dict[str, dict[str, Any]] = {}

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if report.when != "call" or "docker_image" not in properties:
            return
        self.rows.setdefault(properties["docker_image"], {}).update(properties["docker_measured"])

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        columns = [c for c in self.COLUMNS if any(c[0] in row for row in self.rows.values())]
        width = max(len("image"), *map(len, self.rows))
        write = terminalreporter.write_line
        terminalreporter.section("Docker images")
        write(f"{'image':<{width}} " + " ".join(f"{title:>11}" for _, title, _ in columns))
        for shape, row in sorted(self.rows.items()):
            cells = [
                f"{fmt.format(row[key]) if row.get(key) is not None else '-':>11}"
                for key, _, fmt in columns
            ]
            write(f"{shape:<{width}} " + " ".join(cells))
        path = self.config.rootpath / ".results" / "docker-images.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.rows, indent=2, sort_keys=True) + "\n")
        write(f"written to {path}")


# --- `python tests/docker_engine.py render DIRECTORY` ---------------------------------------


def main(argv: Sequence[str]) -> int:
    if len(argv) != 2 or argv[0] != "render":
        print("usage: python tests/docker_engine.py render DIRECTORY", file=sys.stderr)
        return 2
    output = Path(argv[1])
    template = Template(TEMPLATE_ROOT)
    # Only the Dockerfiles and compose files are read: no lock is needed.
    os.environ["PRSM_TEMPLATE_SKIP_LOCK"] = "1"
    with tempfile.TemporaryDirectory() as scratch:
        config = write_cookiecutter_config(Path(scratch))
        for shape in image_shapes(template, "full"):
            print(render(template, shape, output / shape.id, config))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
