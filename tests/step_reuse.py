"""A matrix step's result, reused by another combination whose inputs to it are byte-identical.

A combination's lint, types, tests, commands and security steps see its rendered project as
it stands once its environment is built, the environment itself (which `uv.lock` and
`pyproject.toml` pin), the Python that runs them and the variables they get. `step_key`
hashes exactly those: every file of the project but the ones no step reads (`UNREAD`), the
interpreter, the commands and the environment variables, but for the few that only name
this worker's scratch space (`SCRATCH_VARIABLES`). Two combinations with the same key would
run the same commands on the same bytes, so the second takes the first one's result instead
of running them again.

The commands step's "commands" are its plan (commands.CommandCheck): the programs it runs
with their arguments, variables and input, not the README they come from, and what it
records is what they did (exit status, output, the app's routes); each combination then
holds its own README's and message's commands against that. bandit (the security step)
runs from the template's environment: its interpreter is the template's.

Twins today: a combination with `use_kubernetes` and the same one without it, and a
combination with `use_docker` and the same one without it. The chart and the image add files
under `deploy/`, the Dockerfile and compose file, and lines to the README and the CI workflow,
none of which lint, mypy, pytest, the commands or bandit read; the image tests, the Docker
checks and the chart checks, which do read them, run for each. (The all-on Docker
combinations test against PostgreSQL, another environment: their tests have no twin without
Docker.)

Results live for one pytest run only, in a directory the xdist workers share; a twin that
starts while the other one is still running its step waits for it (a lock per key). The
tests and commands steps of every run record which of the project's files their processes
opened (see `opened_files/`), and the matrix fails if one of them is among `UNREAD`: the
list cannot go stale without the matrix saying so.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit, urlunsplit

# Paths of a rendered project that no step reuses read: ruff and mypy read Python files and
# pyproject.toml, pytest and what it starts only what the tests open, the commands what
# their programs open, bandit the files under src/. (`.cruft.json`, cruft's record of the
# template commit and answers, is in the lifecycle tests' projects.)
UNREAD: tuple[str, ...] = (
    "README.md",
    ".cruft.json",
    "Dockerfile",
    ".dockerignore",
    "compose.yaml",
    ".github/",
    "deploy/",
)

# What the steps write into the project, and the environment: not inputs.
WRITTEN = {".venv", ".mypy_cache", ".pytest_cache", ".ruff_cache", "__pycache__"}

# Variables that name where this worker keeps its caches, or its own Redis database number
# on the same server: they differ between workers, not in what a step checks.
SCRATCH_VARIABLES = {"MYPY_CACHE_DIR", "PYTHONPYCACHEPREFIX"}

# The directory of the sitecustomize.py that lists the project files a process opens.
OPENED_FILES_PLUGIN = Path(__file__).resolve().parent / "opened_files"


def is_unread(relative: PurePosixPath) -> bool:
    text = relative.as_posix()
    return any(text == entry or text.startswith(entry) for entry in UNREAD)


def project_inputs(root: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of the project that a step may read."""
    hashed: dict[str, str] = {}
    for directory, subdirectories, files in os.walk(root):
        subdirectories[:] = [d for d in subdirectories if d not in WRITTEN]
        for name in files:
            path = Path(directory, name)
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if not is_unread(relative):
                hashed[relative.as_posix()] = hashlib.sha256(path.read_bytes()).hexdigest()
    return hashed


def hashed_environment(env: Mapping[str, str]) -> dict[str, str]:
    kept = {key: value for key, value in env.items() if key not in SCRATCH_VARIABLES}
    if "REDIS_URL" in kept:
        # The same server for every worker; each worker only picks its own database on it.
        kept["REDIS_URL"] = urlunsplit(urlsplit(kept["REDIS_URL"])._replace(path=""))
    return kept


def step_key(
    inputs: Mapping[str, str],
    step: str,
    commands: Sequence[Any],
    python: str,
    env: Mapping[str, str],
) -> str:
    """The hash of everything `step` depends on: files, interpreter, commands (argv lists, or
    a plan of them as JSON-like data), variables."""
    described = {
        "step": step,
        "commands": [list(c) if isinstance(c, tuple) else c for c in commands],
        "python": python,
        "env": hashed_environment(env),
        "files": dict(inputs),
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class StepResult:
    combination: str
    failures: list[str]
    # What else a step recorded for its twins to read (the commands step: its probe's report).
    data: dict[str, Any] = field(default_factory=dict)


class StepResults:
    """The steps this run has finished, by key, in a directory every xdist worker sees."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @contextmanager
    def claim(self, key: str) -> Iterator[StepResult | None]:
        """The result recorded under `key`, or None: then the caller runs the step and
        records it before leaving, while twins wait for it here."""
        with (self.directory / f"{key}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                recorded = self.directory / f"{key}.json"
                if recorded.exists():
                    saved = json.loads(recorded.read_text(encoding="utf-8"))
                    yield StepResult(saved["combination"], saved["failures"], saved["data"])
                else:
                    yield None
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def record(self, key: str, result: StepResult) -> None:
        path = self.directory / f"{key}.json"
        partial = path.with_suffix(".partial")
        partial.write_text(
            json.dumps(
                {
                    "combination": result.combination,
                    "failures": result.failures,
                    "data": result.data,
                }
            ),
            encoding="utf-8",
        )
        partial.replace(path)


# How the timing table names a uv.lock that was resolved offline and came out byte-identical
# to the one another combination resolved online (baking.OnlineLocks): listed with the steps
# reused, but not a step's result.
REPLAYED_LOCK = "lock"


def reused_steps(reused: Mapping[str, str]) -> dict[str, str]:
    """Step -> "twin #hash" of the steps whose result came from a twin (no lock replays)."""
    return {step: source for step, source in reused.items() if step != REPLAYED_LOCK}


def describe_reuses(reused: Mapping[str, str]) -> str:
    """`auth+docker: lint #1a2b3c4d, tests #5e6f7a8b; auth: lock #9c0d1e2f` from step ->
    "twin #hash", as the timing table and benchmarks/matrix_cost.py print which twin a
    combination's results came from."""
    by_twin: dict[str, list[str]] = {}
    for step, source in reused.items():
        twin, _, key = source.partition(" #")
        by_twin.setdefault(twin, []).append(f"{step} #{key[:8]}")
    return "; ".join(f"{twin}: {', '.join(steps)}" for twin, steps in sorted(by_twin.items()))


def recording_opened_files(env: Mapping[str, str], root: Path, listing: Path) -> dict[str, str]:
    """`env`, with every Python process started in it listing the files under `root` that it
    opens in `listing`. Not part of the step's key: it records what the step reads."""
    return {
        **env,
        "PYTHONPATH": str(OPENED_FILES_PLUGIN),
        "TEMPLATE_OPENED_FILES": str(listing),
        "TEMPLATE_OPENED_FILES_ROOT": str(root),
    }


def opened_unread(listing: Path, root: Path) -> list[str]:
    """Files among `UNREAD` that the processes of a tests step opened, from their listing."""
    if not listing.exists():
        return []
    opened = set()
    for line in listing.read_text(encoding="utf-8", errors="replace").splitlines():
        path = Path(line)
        if path.is_relative_to(root):
            relative = PurePosixPath(path.relative_to(root).as_posix())
            if is_unread(relative):
                opened.add(relative.as_posix())
    return sorted(opened)
