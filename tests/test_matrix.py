"""Render each feature combination and hold it to what its own project promises: a clean
render, exactly its features' files, its Docker and Helm chart checks, then lint, types and
tests in an environment built from its own pyproject.toml. `--matrix=full` runs every
combination; the default is quick."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from baking import (
    BakedProject,
    Combination,
    StepFailed,
    Template,
    Timings,
    feature_problems,
    find_python,
    leftover_problems,
)
from commands import command_problems
from docker_checks import project_problems
from kubernetes_checks import chart_problems
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
    "tests": [("pytest",)],
}

TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def test_combination(
    combination: Combination,
    bake: Callable[..., BakedProject],
    template: Template,
    timings: Timings,
    step_results: StepResults,
    tmp_path: Path,
) -> None:
    with timings.step("bake"):
        project = bake(**combination.answers)
    manifest = template.hook("post_gen_project").MANIFEST
    failures = [f"[render] {problem}" for problem in leftover_problems(project)]
    failures += [f"[features] {problem}" for problem in feature_problems(project, manifest)]
    with timings.step("docker"):
        docker = project_problems(project.path, project.answers)
        failures += [f"[docker] {problem}" for problem in docker]
    if project.answers["use_kubernetes"]:
        with timings.step("chart"):
            chart = chart_problems(project.path, project.answers)
            failures += [f"[chart] {problem}" for problem in chart]

    with timings.step("env"):
        try:
            project.install()
        except StepFailed as error:
            pytest.fail("\n".join([*failures, f"[env] {error}"]), pytrace=False)

    # Docker-on auth combinations test against PostgreSQL, as their compose stack deploys
    # them; Docker-off ones against SQLite, the default. Each auth code path meets both.
    env = dict(project.env)
    if project.answers["use_auth"] and project.answers["use_docker"]:
        env["DATABASE_URL"] = TEST_POSTGRES_URL
    inputs = project_inputs(project.path)
    python = find_python(str(project.answers["python_version"]))
    for step, commands in STEPS.items():
        key = step_key(inputs, step, commands, python, env)
        with timings.step(step), step_results.claim(key) as earlier:
            if earlier is not None:
                timings.reused(step, earlier.combination, key)
                failures += [f"{f} (reused from {earlier.combination})" for f in earlier.failures]
                continue
            found = run_step(project, step, commands, env, tmp_path)
            step_results.record(key, StepResult(combination.id, found))
            failures += found

    with timings.step("commands"):
        # What the "Next" message and the README tell a user to run, in this environment.
        message = template.hook("post_gen_project").next_steps(project.answers)
        failures += [
            f"[commands] {problem}" for problem in command_problems(project, message, tmp_path)
        ]

    with timings.step("security"):
        failures += [f"[security] {problem}" for problem in bandit_findings(project)]

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def run_step(
    project: BakedProject,
    step: str,
    commands: Sequence[Sequence[str]],
    env: dict[str, str],
    scratch: Path,
) -> list[str]:
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
    failures += [
        f"[{step}] read {path}, which step_reuse.UNREAD says no step reads: hash it"
        for path in opened_unread(listing, project.path)
    ]
    return failures


def bandit_findings(project: BakedProject) -> list[str]:
    """bandit over the project's source, run from the template's environment so the rendered
    project need not depend on it. A false positive gets a `# nosec BXXX` with its reason in
    the template, never a skip here."""
    bandit = Path(sys.executable).with_name("bandit")
    result = project.run(str(bandit), "-r", "src", "-q", "-f", "txt", timeout=120)
    if result.returncode == 0:
        return []
    return [(result.stdout + result.stderr).strip()]
