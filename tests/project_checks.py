"""A rendered project's lint, types and tests, as the matrix runs them, each taking the result
of a project whose inputs to that step are byte-identical (step_reuse.py) where there is one:
the matrix's combinations and the lifecycle tests' projects share them."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

from baking import PROJECT_TESTS, BakedProject, StepFailed, Timings, find_python
from step_reuse import (
    StepResult,
    StepResults,
    opened_unread,
    project_inputs,
    recording_opened_files,
    step_key,
)

STEPS: dict[str, list[tuple[str, ...]]] = {
    "lint": [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
    "types": [("mypy", "src", "tests")],
    "tests": [PROJECT_TESTS],
}

TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def checked_steps(
    project: BakedProject,
    label: str,
    results: StepResults,
    timings: Timings,
    scratch: Path,
    inputs: Mapping[str, str] | None = None,
) -> list[str]:
    """The failures of the project's lint, types and tests (its environment built), each
    step run, or its result taken from the project `results` has under the same key and
    recorded in `timings`. `label` names this project to the ones that take its results."""
    inputs = project_inputs(project.path) if inputs is None else inputs
    python = find_python(str(project.answers["python_version"]))
    failures = []
    for step, commands in STEPS.items():
        env = step_env(project, step)
        key = step_key(inputs, step, commands, python, env)
        run = partial(run_step, label, project, step, commands, env, scratch)
        with timings.step(step):
            result, reused = reuse_or_run(results, timings, step, key, run)
        failures += [f"{failure}{reused}" for failure in result.failures]
    return failures


def reuse_or_run(
    results: StepResults, timings: Timings, step: str, key: str, run: Callable[[], StepResult]
) -> tuple[StepResult, str]:
    """The result a twin recorded under `key`, else `run()`'s, recorded for the twins; and
    " (reused from TWIN)" to follow each failure of a reused one."""
    with results.claim(key) as earlier:
        if earlier is not None:
            timings.reused(step, earlier.combination, key)
            return earlier, f" (reused from {earlier.combination})"
        result = run()
        results.record(key, result)
        return result, ""


# The combinations whose tests run against PostgreSQL: everything on that meets the user
# store, with the compose stack that deploys PostgreSQL (any Python, with or without the chart).
POSTGRES_TOGGLES = (
    "use_auth",
    "use_redis_cache",
    "use_background_jobs",
    "use_prometheus",
    "use_docker",
)


def uses_postgres_for_tests(answers: Mapping[str, Any]) -> bool:
    return all(answers[toggle] for toggle in POSTGRES_TOGGLES)


def step_env(project: BakedProject, step: str) -> dict[str, str]:
    """The variables a step runs with: the project's own. Tests run against SQLite, the
    default, but for the all-on Docker combinations, which run them against PostgreSQL as
    their compose stack deploys them. Every line of the other auth combinations that speaks
    to the database is in theirs too (test_every_database_line_meets_postgres), so each auth
    code path meets both databases; the others' Docker twins then share their results."""
    env = dict(project.env)
    if step == "tests" and uses_postgres_for_tests(project.answers):
        env["DATABASE_URL"] = TEST_POSTGRES_URL
    return env


def run_step(
    combination: str,
    project: BakedProject,
    step: str,
    commands: Sequence[Sequence[str]],
    env: dict[str, str],
    scratch: Path,
) -> StepResult:
    """The failures of one step's commands. The tests step also lists the project files its
    processes open: one that the step reuse does not hash is a failure of its own."""
    listing = scratch / f"{step}-opened-files.txt"
    if step == "tests":
        env = recording_opened_files(env, project.path, listing)
    failures = []
    for command in commands:
        try:
            project.uv_run(*command, env=env)
        except StepFailed as error:
            failures.append(f"[{step}] {error}")
    unread = opened_unread(listing, project.path)
    failures += [f"[{step}] {problem}" for problem in unread_problems({"unread": unread})]
    return StepResult(combination, failures)


def unread_problems(report: dict[str, Any]) -> list[str]:
    return [
        f"read {path}, which step_reuse.UNREAD says no step reads: hash it"
        for path in report.get("unread", [])
    ]
