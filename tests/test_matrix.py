"""Render each feature combination and hold it to what its own project promises: a clean
render, exactly its features' files, its Docker and Helm chart checks, then lint, types and
tests in an environment built from its own pyproject.toml. `--matrix=full` runs every
combination; the default is quick."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from baking import (
    BakedProject,
    Combination,
    StepFailed,
    Template,
    Timings,
    feature_problems,
    leftover_problems,
)
from commands import command_problems
from docker_checks import project_problems
from kubernetes_checks import chart_problems

TEST_POSTGRES_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def test_combination(
    combination: Combination,
    bake: Callable[..., BakedProject],
    template: Template,
    timings: Timings,
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

    steps = {
        "lint": [("ruff", "check", "."), ("ruff", "format", "--check", ".")],
        "types": [("mypy", "src", "tests")],
        "tests": [("pytest",)],
    }
    for step, commands in steps.items():
        with timings.step(step):
            for command in commands:
                try:
                    project.uv_run(*command)
                except StepFailed as error:
                    failures.append(f"[{step}] {error}")

    with timings.step("commands"):
        # What the "Next" message and the README tell a user to run, in this environment.
        message = template.hook("post_gen_project").next_steps(project.answers)
        failures += [
            f"[commands] {problem}" for problem in command_problems(project, message, tmp_path)
        ]

    if project.answers["use_auth"]:
        # The auth suite once more against PostgreSQL: it makes a database of its own on the
        # server and drops it afterwards.
        with timings.step("auth-pg"):
            postgres = {**project.env, "DATABASE_URL": TEST_POSTGRES_URL}
            try:
                project.uv_run("pytest", "tests/auth", "-q", env=postgres)
            except StepFailed as error:
                failures.append(f"[auth-pg] {error}")

    with timings.step("security"):
        failures += [f"[security] {problem}" for problem in bandit_findings(project)]

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def bandit_findings(project: BakedProject) -> list[str]:
    """bandit over the project's source, run from the template's environment so the rendered
    project need not depend on it. A false positive gets a `# nosec BXXX` with its reason in
    the template, never a skip here."""
    bandit = Path(sys.executable).with_name("bandit")
    result = project.run(str(bandit), "-r", "src", "-q", "-f", "txt", timeout=120)
    if result.returncode == 0:
        return []
    return [(result.stdout + result.stderr).strip()]
