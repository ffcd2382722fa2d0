"""The images the template ships, built and run by a real Docker engine: the rendered,
unmodified Dockerfile and compose file of the all-on project (on each offered Python with
`--matrix=full`, on the default one otherwise) and of the smallest Docker-on project.

- Build: the image stays within its size budget; a rebuild with nothing changed takes every
  step from the cache; after a source edit only the project's own small layer changes.
- Run as compose runs it (read-only, /tmp on tmpfs, no capabilities, no-new-privileges, an
  init, the port on 127.0.0.1 only): /health answers, every process is uid 10001 and cannot
  write its root file system, the image's HEALTHCHECK reaches healthy, and `docker stop`
  ends in a logged graceful shutdown with exit status 0.
- The whole stack: `docker compose up --build --wait`, then a user made with the project's
  CLI logs in, asks, submits a job that the worker container completes, and /metrics counts
  it all; `docker compose down --volumes` leaves nothing behind.

What each step measured goes into the "Docker images" table at the end of the run.
`--docker-no-cache` builds each image from scratch first, for cold build times (one build at
a time then: see `Docker.one_build_at_a_time`).
Without an engine these tests fail, saying so; TEMPLATE_SKIP_DOCKER_ENGINE=1 skips them.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import BakedProject, OnlineLocks, Template, render_replaying_lock
from docker_checks import (
    compose_test_argv,
    hardening_missing,
    load_compose,
    log_line_problems,
    parse_dockerfile,
)
from docker_engine import (
    Build,
    Container,
    Docker,
    DockerFailed,
    ImageShape,
    Response,
    answers_http,
    ensure_lock,
    http,
    render,
    require_engine,
    tail,
)

MIB = 2**20
# The image's own HEALTHCHECK is asked every second instead of every 30 s.
HEALTH_INTERVAL = "1s"
START_TIMEOUT = 60.0
# A source edit may change this much of the image: the project's own files, not its
# dependencies.
EDIT_LAYER_BUDGET = 2 * MIB
APP_USER = "10001"


# --- the engine, and the images built once per session -----------------------------------


@pytest.fixture(scope="session")
def docker(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Docker]:
    require_engine()
    engine = Docker(uuid.uuid4().hex[:10])
    if pytestconfig.option.docker_no_cache:
        # The directory above each xdist worker's own: one lock for all of them.
        engine.build_lock = tmp_path_factory.getbasetemp().parent / "docker-builds.lock"
    yield engine
    engine.cleanup()


@dataclass
class BuiltImage:
    shape: ImageShape
    answers: dict[str, Any]
    project: Path
    build: Build


class Images:
    """Each shape's project, rendered and built the first time a test asks for it."""

    def __init__(
        self, docker: Docker, template: Template, workdir: Path, config: Path, locks: OnlineLocks
    ) -> None:
        self.docker, self.template, self.workdir, self.config = docker, template, workdir, config
        self.locks = locks
        self.built: dict[str, BuiltImage] = {}
        self.no_cache = False

    def get(self, shape: ImageShape) -> BuiltImage:
        if shape.id not in self.built:
            output = self.workdir / "images" / shape.id

            def render_anew() -> Path:
                shutil.rmtree(output, ignore_errors=True)
                return render(self.template, shape, output, self.config)

            project, _ = render_replaying_lock(
                self.template, shape.answers, render_anew, self.locks, f"image {shape.id}"
            )
            ensure_lock(project)
            tag = f"{self.docker.prefix}/{shape.id.replace('@', '-')}:built"
            build = self.docker.build(project, tag, no_cache=self.no_cache)
            answers = self.template.answers(**shape.answers)
            self.built[shape.id] = BuiltImage(shape, answers, project, build)
        return self.built[shape.id]


@pytest.fixture(scope="session")
def images(
    docker: Docker,
    template: Template,
    workdir: Path,
    cookiecutter_config: Path,
    online_locks: OnlineLocks,
    pytestconfig: pytest.Config,
) -> Images:
    built = Images(docker, template, workdir, cookiecutter_config, online_locks)
    built.no_cache = pytestconfig.option.docker_no_cache
    return built


def _measured(request: pytest.FixtureRequest, shape_id: str) -> dict[str, Any]:
    """Numbers for the Docker images table, carried to the controller in the test report."""
    measured: dict[str, Any] = {}
    request.node.user_properties.append(("docker_image", shape_id))
    request.node.user_properties.append(("docker_measured", measured))
    return measured


def _built(images: Images, shape: ImageShape) -> BuiltImage:
    try:
        return images.get(shape)
    except DockerFailed as error:
        why = str(error)
    pytest.fail(f"the image did not build: {why}", pytrace=False)


# --- build ---------------------------------------------------------------------------------


def test_the_image_is_small_and_a_source_edit_rebuilds_only_the_project_layer(
    image_shape: ImageShape, images: Images, docker: Docker, request: pytest.FixtureRequest
) -> None:
    measured = _measured(request, image_shape.id)
    image = _built(images, image_shape)
    first = image.build
    deps_cached = first.was_cached("--no-install-project")
    measured.update(
        first_build_s=first.seconds,
        first_build="cached" if deps_cached else ("no-cache" if images.no_cache else "built"),
    )
    failures = []

    base = parse_dockerfile((image.project / "Dockerfile").read_text())[-1].image
    size = docker.image(first.image_id)["Size"]
    added = (size - docker.image(base, pull=True)["Size"]) / MIB
    measured.update(size_mb=size / 1e6, added_mib=added, budget_mib=image_shape.budget_mib)
    if added > image_shape.budget_mib:
        failures.append(
            f"[size] the layers above {base} add {added:.1f} MiB, over the budget of "
            f"{image_shape.budget_mib} MiB"
        )

    again = docker.build(image.project, first.tag)
    measured["rebuild_s"] = again.seconds
    if again.rebuilt():
        failures.append(f"[rebuild] with nothing changed, BuildKit ran again: {again.rebuilt()}")
    elif again.image_id != first.image_id:
        failures.append(f"[rebuild] with nothing changed, a new image: {again.image_id}")

    init = image.project / "src" / str(image.answers["package_name"]) / "__init__.py"
    # Worded anew in each session, so that BuildKit cannot have the edited layer cached.
    init.write_text(init.read_text() + f"# A source edit in test run {docker.run_id}.\n")
    edited = docker.build(image.project, f"{first.tag}-edited")
    measured["edit_build_s"] = edited.seconds
    if edited.was_cached("--no-install-project") is not True:
        failures.append(f"[edit] a source edit rebuilt the dependencies: {edited.rebuilt()}")
    old, new = (docker.image(i)["RootFS"]["Layers"] for i in (first.image_id, edited.image_id))
    shared = next((i for i, (a, b) in enumerate(zip(old, new, strict=False)) if a != b), len(old))
    changed = docker.unique_bytes(edited.image_id)
    measured["edit_layer_kb"] = changed / 1e3
    if changed > EDIT_LAYER_BUDGET:
        failures.append(
            f"[edit] a source edit changed {len(new) - shared} of {len(new)} layers, "
            f"{changed / 1e3:.0f} kB (at most {EDIT_LAYER_BUDGET / 1e3:.0f} kB)"
        )
    docker.remove_images(edited.tag)

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# --- run as compose runs it -----------------------------------------------------------------

# Run inside the container: every other process's ids, capabilities and no_new_privs, which
# paths it can write, and whether uv is there.
PROBE = """
import errno, json, os, shutil
processes = []
for pid in filter(str.isdigit, os.listdir("/proc")):
    if int(pid) == os.getpid():
        continue
    try:
        with open(f"/proc/{pid}/status") as file:
            status = dict(line.split(":", 1) for line in file.read().splitlines())
        with open(f"/proc/{pid}/cmdline", "rb") as file:
            command = file.read().replace(b"\\0", b" ").decode().strip()
    except OSError:
        continue
    processes.append({
        "pid": int(pid), "command": command, "uid": status["Uid"].split(),
        "gid": status["Gid"].split(), "capabilities": status["CapEff"].strip(),
        "no_new_privs": status["NoNewPrivs"].strip(),
    })
writes = {}
for path in ("/probe", "/app/probe", "/app/.venv/probe", "/tmp/probe"):
    try:
        with open(path, "w") as file:
            file.write("x")
        os.remove(path)
        writes[path] = "written"
    except OSError as error:
        writes[path] = errno.errorcode.get(error.errno, str(error.errno))
print(json.dumps({"processes": processes, "writes": writes, "uv": shutil.which("uv")}))
"""


def test_the_image_runs_as_compose_runs_it(
    image_shape: ImageShape, images: Images, docker: Docker, request: pytest.FixtureRequest
) -> None:
    measured = _measured(request, image_shape.id)
    image = _built(images, image_shape)
    api = load_compose(image.project)["services"]["api"]
    missing = hardening_missing(api)
    assert not missing, f"compose.yaml runs the api without {missing}"
    grace = _seconds(api.get("stop_grace_period", "10s"))
    # A slow embedded engine, so that a query is still in flight when the container stops.
    options = [*_compose_options(api), "--publish", "127.0.0.1::8000"]
    options += ["--env", "PRSM_ENGINE_LATENCY_MS=1500", "--health-interval", HEALTH_INTERVAL]
    failures: list[str] = []

    name = image_shape.id.replace("@", "-")
    try:
        with docker.container(name, image.build.tag, *options) as container:
            failures += _serve_and_stop(container, image, measured, grace)
    except DockerFailed as error:
        failures.append(f"[run] {error}")
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def _serve_and_stop(
    container: Container, image: BuiltImage, measured: dict[str, Any], grace: float
) -> list[str]:
    answers = image.answers
    failures = []
    addresses = _wait_published(container)
    if {host for host, _ in addresses} != {"127.0.0.1"}:
        failures.append(f"[port] published on {addresses}, not on 127.0.0.1 only")
    base = f"http://127.0.0.1:{addresses[0][1]}"
    measured["health_s"] = container.wait_for(
        "/health 200", lambda: answers_http(f"{base}/health"), START_TIMEOUT
    )
    measured["healthy_s"] = container.wait_for(
        "a healthy HEALTHCHECK", lambda: _healthy(container), START_TIMEOUT
    )
    failures += _process_problems(container, str(answers["package_name"]))
    failures += _healthcheck_problems(container, container.docker.image(image.build.tag))
    if answers["use_prometheus"]:
        metrics = http("GET", f"{base}/metrics")
        if metrics.status != 200 or "http_requests_total" not in metrics.text:
            failures.append(f"[metrics] GET /metrics answered {metrics.status}")

    # With auth on, queries need a migrated user database: the stack test asks those.
    query = None if answers["use_auth"] else _in_background(lambda: _ask(base))
    if query:
        time.sleep(0.5)  # the query is now waiting for the slow engine's answer
    measured["stop_s"], measured["exit"] = container.stop(grace)
    if query:
        response = query()
        if response.status != 200 or response.json().get("answer") != "4":
            failures.append(f"[stop] the query in flight got {response.status}: {response.text}")
    logs = container.logs()
    failures += _shutdown_problems("api", measured["exit"], measured["stop_s"], grace, logs)
    # One log format: the container's every line, uvicorn's own included, is a JSON entry.
    failures += [f"[logs] {problem}" for problem in log_line_problems(logs)]
    return failures


def _healthy(container: Container) -> bool:
    status = container.health()
    if status == "unhealthy":
        raise DockerFailed(f"the HEALTHCHECK found {container.name} unhealthy")
    return status == "healthy"


def _compose_options(service: dict[str, Any]) -> list[str]:
    """The `docker run` options of the security settings a compose service declares."""
    options = ["--init"] if service.get("init") else []
    options += ["--read-only"] if service.get("read_only") else []
    for flag, key in (
        ("--tmpfs", "tmpfs"),
        ("--cap-drop", "cap_drop"),
        ("--security-opt", "security_opt"),
    ):
        values = service.get(key) or []
        for value in [values] if isinstance(values, str) else values:
            options += [flag, str(value)]
    return options


def _process_problems(container: Container, package: str) -> list[str]:
    result = container.exec("python", "-c", PROBE)
    if result.returncode != 0:
        return [f"[processes] the probe failed:\n{tail(result.stdout + result.stderr)}"]
    probe = json.loads(result.stdout)
    problems = []
    commands = [process["command"] for process in probe["processes"]]
    if not any(f"{package}.serve" in command for command in commands):
        problems.append(f"[processes] no `{package}.serve` among {commands}")
    for process in probe["processes"]:
        ids = {*process["uid"], *process["gid"]}
        who = f"pid {process['pid']} `{process['command'][:80]}`"
        if ids != {APP_USER} or process["capabilities"] != "0" * 16:
            problems.append(
                f"[processes] {who} runs as uid/gid {sorted(ids)} with capabilities "
                f"{process['capabilities']}, not as {APP_USER} with none"
            )
        if process["no_new_privs"] != "1":
            problems.append(f"[processes] {who} may gain privileges (no_new_privs 0)")
    expected = dict.fromkeys(probe["writes"], errno.errorcode[errno.EROFS])
    expected["/tmp/probe"] = "written"
    if probe["writes"] != expected:
        problems.append(f"[filesystem] writes: {probe['writes']}, expected {expected}")
    if probe["uv"]:
        problems.append(f"[image] uv is in the final image: {probe['uv']}")
    return problems


def _healthcheck_problems(container: Container, image: dict[str, Any]) -> list[str]:
    """The image's probe must fail with nothing on its port (here, a port nobody listens on):
    `healthy` alone would not show that it asks the server at all."""
    test = image["Config"]["Healthcheck"]["Test"]
    result = container.exec(*compose_test_argv(test), env={"UVICORN_PORT": "9"})
    if result.returncode == 0:
        return ["[healthcheck] the image's HEALTHCHECK passes with nothing listening"]
    return []


def _shutdown_problems(name: str, code: int, seconds: float, grace: float, logs: str) -> list[str]:
    """A stop is clean when it exits 0 (serve.py's choice, see the rendered README) well
    within the grace period, having logged uvicorn's shutdown from start to end."""
    problems = []
    if code != 0 or seconds >= grace:
        problems.append(f"[stop] {name} exited {code} after {seconds:.1f} s (grace {grace:.0f} s)")
    for line in ("Shutting down", "Application shutdown complete", "Finished server process"):
        if line not in logs:
            problems.append(f"[stop] {name} never logged {line!r}:\n{tail(logs)}")
    if "Traceback" in logs:
        problems.append(f"[stop] {name} logged a traceback:\n{tail(logs)}")
    return problems


def _wait_published(container: Container) -> list[tuple[str, int]]:
    deadline = time.monotonic() + START_TIMEOUT
    while not (addresses := container.published(8000)):
        if time.monotonic() > deadline:
            pytest.fail(f"port 8000 of {container.name} was never published", pytrace=False)
        time.sleep(0.1)
    return addresses


# --- the whole stack ------------------------------------------------------------------------

PASSWORD = "correct horse battery staple"
# How long a fresh stack may take to report every readiness check ok.
READY_SECONDS = 10.0


def test_the_compose_stack_serves_a_user_end_to_end(
    bake: Callable[..., BakedProject],
    template: Template,
    docker: Docker,
    workdir: Path,
    request: pytest.FixtureRequest,
) -> None:
    project = bake(**dict.fromkeys(template.toggles, True))
    stack = Stack(docker, project.path, workdir / f"compose-override-{docker.run_id}.yaml")
    measured = _measured(request, "compose stack (all-on)")
    failures: list[str] = []
    try:
        ensure_lock(project.path)
        measured["up_wait_s"] = stack.up()
        failures += stack.state_problems()
        failures += stack.port_problems()
        if not failures:
            failures += _serve_a_user(stack, project.package)
            failures += stack.stop_problems()
    except DockerFailed as error:
        failures.append(f"[stack] {error}\n{tail(stack.logs(), 60)}")
    finally:
        measured["down_s"] = stack.down()
    failures += stack.leftover_problems()
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


class Stack:
    """The project's own compose file, plus an override of the test's: every port published
    on 127.0.0.1 only, the session's own image name (not the project's, which other runs use
    too), health checks every second instead of every 5 to 10, two API worker processes as
    a production .env would ask for, and a slow embedded PRSM engine in the API so that a
    query can be in flight when it stops."""

    def __init__(self, docker: Docker, project: Path, override: Path) -> None:
        self.docker, self.project = docker, project
        self.name = docker.prefix
        self.image = f"{docker.prefix}/stack:built"
        services = load_compose(project)["services"]
        patch: dict[str, dict[str, Any]] = {name: {} for name in services}
        for name, service in services.items():
            if "build" in service:
                patch[name]["image"] = self.image
            if (service.get("healthcheck") or {}).get("test"):
                patch[name]["healthcheck"] = {"interval": "1s"}
            if ports := service.get("ports"):
                patch[name]["ports"] = [f"127.0.0.1::{_container_port(p)}" for p in ports]
        patch["api"]["environment"] = {"WEB_CONCURRENCY": "2", "PRSM_ENGINE_LATENCY_MS": "1000"}
        text = yaml.safe_dump({"services": patch}, sort_keys=False)
        # `!override`: the project's port mappings are replaced, not added to.
        override.write_text(text.replace("    ports:\n", "    ports: !override\n"))
        self.token = ""
        self.volumes: set[str] = set()
        self.files = ["--file", str(project / "compose.yaml"), "--file", str(override)]
        self.services = services

    def compose(
        self, *args: str, timeout: float = 120, input: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        return self.docker.run(
            "compose", "--project-name", self.name, *self.files, *args,
            timeout=timeout, input=input, check=check,
        )  # fmt: skip

    def up(self) -> float:
        started = time.perf_counter()
        with self.docker.one_build_at_a_time():  # it builds the image
            self.compose(
                "up", "--build", "--detach", "--wait", "--wait-timeout", "240", timeout=900
            )
        return round(time.perf_counter() - started, 2)

    def containers(self) -> dict[str, dict[str, Any]]:
        listed = self.docker.run("ps", "--all", "--quiet", "--filter", self.label).stdout.split()
        found = self.docker.inspect("container", *listed) if listed else []
        return {c["Config"]["Labels"]["com.docker.compose.service"]: c for c in found}

    def state_problems(self) -> list[str]:
        problems = []
        containers = self.containers()
        for name, service in self.services.items():
            state = (containers.get(name) or {}).get("State", {})
            one_shot = service.get("restart") == "no"
            if one_shot:
                ok = state.get("Status") == "exited" and state.get("ExitCode") == 0
            else:
                ok = state.get("Status") == "running" and state["Health"]["Status"] == "healthy"
            if not ok:
                problems.append(f"[up] {name}: {json.dumps(state)[:400]}")
        return problems

    def port_problems(self) -> list[str]:
        problems = []
        for name, container in self.containers().items():
            for port, bindings in (container["NetworkSettings"]["Ports"] or {}).items():
                for binding in bindings or []:
                    if binding["HostIp"] != "127.0.0.1":
                        problems.append(f"[ports] {name} publishes {port} on {binding}")
        return problems

    def url(self) -> str:
        (address,) = Container(self.docker, self.containers()["api"]["Name"][1:]).published(8000)
        return f"http://127.0.0.1:{address[1]}"

    def exec(
        self, service: str, *argv: str, input: str | None = None, **env: str
    ) -> subprocess.CompletedProcess[str]:
        options = [f"--env={key}={value}" for key, value in env.items()]
        return self.compose("exec", "-T", *options, service, *argv, input=input, check=False)

    def logs(self, *services: str) -> str:
        result = self.compose("logs", "--no-color", *services, check=False)
        return result.stdout + result.stderr

    def stop_problems(self) -> list[str]:
        """The API stopped with a query in flight (it is answered), then everything else;
        each of the service's own containers exits 0 after its graceful shutdown."""
        containers = self.containers()
        grace = _seconds(self.services["api"].get("stop_grace_period", "10s"))
        api = Container(self.docker, containers["api"]["Name"][1:])
        base = self.url()
        query = _in_background(lambda: _ask(base, token=self.token))
        time.sleep(0.5)
        seconds, code = api.stop(grace)
        response = query()
        problems = _shutdown_problems("api", code, seconds, grace, api.logs())
        if response.status != 200:
            problems.append(f"[stop] the query in flight got {response.status}: {response.text}")
        started = time.perf_counter()
        self.compose("stop", timeout=grace + 60)
        elapsed = time.perf_counter() - started
        for name, container in self.containers().items():
            service = self.services[name]
            if "build" not in service or service.get("restart") == "no" or name == "api":
                continue
            code = container["State"]["ExitCode"]
            if code != 0 or elapsed >= grace or "Traceback" in self.logs(name):
                problems.append(
                    f"[stop] {name} exited {code} after {elapsed:.1f} s:\n{tail(self.logs(name))}"
                )
        return problems

    def down(self) -> float:
        # Anonymous volumes carry no compose label: their names are taken before they go.
        self.volumes = {
            mount["Name"]
            for container in self.containers().values()
            for mount in container["Mounts"]
            if mount["Type"] == "volume"
        }
        started = time.perf_counter()
        self.compose("down", "--volumes", "--remove-orphans", timeout=180, check=False)
        seconds = round(time.perf_counter() - started, 2)
        # compose builds the image once per service that names it (labelled with the service):
        # the name ends on the last one, the others are left untagged.
        built = self.docker.run("image", "ls", "--quiet", "--filter", self.label).stdout.split()
        self.docker.remove_images(*sorted(set(built)))
        return seconds

    @property
    def label(self) -> str:
        return f"label=com.docker.compose.project={self.name}"

    def leftover_problems(self) -> list[str]:
        label = self.label
        left = {
            kind: set(self.docker.run(*ls, "--quiet", "--filter", label).stdout.split())
            for kind, ls in (
                ("container", ("ps", "--all")),
                ("network", ("network", "ls")),
                ("volume", ("volume", "ls")),
                ("image", ("image", "ls")),
            )
        }
        left["volume"] |= self.volumes & set(
            self.docker.run("volume", "ls", "--quiet").stdout.split()
        )
        found = {kind: sorted(ids) for kind, ids in left.items() if ids}
        return [f"[down] left after `docker compose down --volumes`: {found}"] if found else []


def _serve_a_user(stack: Stack, package: str) -> list[str]:
    """What a user does with a fresh stack, through the published port."""
    problems = []
    base = stack.url()
    # Every check ok within a few seconds: on a busy machine one probe may take longer than
    # its timeout (the cache's is 100 ms) and report that part degraded for that moment.
    deadline = time.monotonic() + READY_SECONDS
    while True:
        ready = http("GET", f"{base}/health/ready")
        checks = ready.json().get("checks", {}) if ready.status in (200, 503) else {}
        if ready.status == 200 and set(checks.values()) == {"ok"}:
            break
        if time.monotonic() > deadline:
            problems.append(f"[ready] GET /health/ready answered {ready.status}: {ready.text}")
            break
        time.sleep(0.5)

    created = stack.exec("api", package, "create-user", "alice", "--quota", "100", input=PASSWORD)
    if created.returncode != 0 or "created alice" not in created.stdout:
        return [*problems, f"[cli] create-user: {tail(created.stdout + created.stderr)}"]
    login = http("POST", f"{base}/auth/token", form={"username": "alice", "password": PASSWORD})
    if login.status != 200:
        return [*problems, f"[login] POST /auth/token answered {login.status}: {login.text}"]
    stack.token = login.json()["access_token"]

    answer = _ask(base, token=stack.token)
    if answer.status != 200 or answer.json().get("answer") != "4":
        problems.append(f"[query] POST /ai/query answered {answer.status}: {answer.text}")

    problems += _job_problems(stack, base)
    problems += _metrics_problems(stack, base)
    return problems


def _job_problems(stack: Stack, base: str) -> list[str]:
    headers = {"Authorization": f"Bearer {stack.token}"}
    body = {"prompt": "What is 3*4?"}
    submitted = http("POST", f"{base}/ai/jobs", json_body=body, headers=headers)
    if submitted.status != 202:
        return [f"[jobs] POST /ai/jobs answered {submitted.status}: {submitted.text}"]
    job_id = submitted.json()["job_id"]
    deadline = time.monotonic() + 60
    while True:
        job = http("GET", f"{base}/ai/jobs/{job_id}", headers=headers).json()
        if job.get("status") in ("completed", "failed") or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    problems = []
    if job.get("status") != "completed" or job["result"]["answer"] != "12":
        problems.append(f"[jobs] the job ended as {job}")
    completed = {"message": "job completed", "job_id": job_id}
    if not any(entry.items() >= completed.items() for entry in _log_entries(stack.logs("worker"))):
        problems.append(f"[jobs] the worker container never logged completing {job_id}")
    # The worker's health check asks its broker: it must fail when the broker is away.
    test = stack.services["worker"]["healthcheck"]["test"]
    probe = stack.exec("worker", *compose_test_argv(test), REDIS_URL="redis://127.0.0.1:9/0")
    if probe.returncode == 0:
        problems.append("[jobs] the worker's health check passes with its broker unreachable")
    return problems


def _log_entries(output: str) -> list[dict[str, Any]]:
    """The JSON entries in `docker compose logs` output, each line's service prefix cut off."""
    entries = []
    for line in output.splitlines():
        _, brace, rest = line.partition("{")
        try:
            entry = json.loads(brace + rest)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _metrics_problems(stack: Stack, base: str) -> list[str]:
    """/metrics adds up both API processes (through the tmpfs directory they share): each of
    a run of fresh-connection requests is counted, whichever process served it."""
    health = r'http_requests_total\{handler="/health",method="GET",status="2xx"\} (\S+)'
    before = _metric(http("GET", f"{base}/metrics").text, health) or 0.0
    sent = 20
    for _ in range(sent):
        http("GET", f"{base}/health")
    metrics = http("GET", f"{base}/metrics")
    if metrics.status != 200:
        return [f"[metrics] GET /metrics answered {metrics.status}"]
    problems = []
    expected = {
        r'prsm_queries_total\{outcome="ok"\} (\S+)': 1.0,
        r"jobs_enqueued_total (\S+)": 1.0,
        health: before + sent,  # the health checks' own requests come on top
    }
    for pattern, least in expected.items():
        value = _metric(metrics.text, pattern)
        if value is None or value < least:
            problems.append(f"[metrics] {pattern} is {value}, expected at least {least}")
    writers = stack.exec("api", "ls", "/tmp/prometheus")
    pids = {re.sub(r"\D", "", name) for name in writers.stdout.split() if name.endswith(".db")}
    if len(pids) < 2:
        problems.append(f"[metrics] the API processes share no metrics: {writers.stdout!r}")
    return problems


def _metric(text: str, pattern: str) -> float | None:
    match = re.search(f"^{pattern}$", text, flags=re.MULTILINE)
    return float(match.group(1)) if match else None


# --- small helpers --------------------------------------------------------------------------


def _container_port(mapping: Any) -> str:
    """`"${API_PORT:-8000}:8000"` or `{target: 8000, ...}` -> `8000`."""
    if isinstance(mapping, dict):
        return str(mapping["target"])
    return str(mapping).rsplit(":", 1)[-1]


def _seconds(value: Any) -> float:
    """Compose's durations: `30s`, `1m30s`, or a number of seconds."""
    if isinstance(value, int | float):
        return float(value)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"([\d.]+)(ms|h|m|s)", str(value))
    return sum(float(number) * units[unit] for number, unit in parts)


def _ask(base: str, *, token: str | None = None) -> Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    body: dict[str, Any] = {"prompt": "What is 2+2?"}
    if token is None:
        body["user_id"] = "alice"
    return http("POST", f"{base}/ai/query", json_body=body, headers=headers, timeout=60)


def _in_background(call: Callable[[], Response]) -> Callable[[], Response]:
    """Start `call` in a thread; the returned function waits for its response."""
    result: list[Response | BaseException] = []

    def run() -> None:
        try:
            result.append(call())
        except BaseException as error:  # handed to the waiting side
            result.append(error)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def wait() -> Response:
        thread.join(timeout=90)
        if not result:
            raise DockerFailed("the request in the background never finished")
        if isinstance(result[0], BaseException):
            raise DockerFailed(f"the request in the background failed: {result[0]!r}")
        return result[0]

    return wait
