"""Render each feature combination and hold it to what its own project promises: a clean
render, exactly its features' files, its Docker and Helm chart checks, then lint, types and
tests in an environment built from its own pyproject.toml. `--matrix=full` runs every
combination; the default is quick."""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Sequence
from functools import partial
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
from commands import CommandCheck
from docker_checks import project_problems
from kubernetes_checks import chart_problems
from project_checks import checked_steps, reuse_or_run, unread_problems
from step_reuse import (
    REPLAYED_LOCK,
    StepResult,
    StepResults,
    opened_unread,
    project_inputs,
    recording_opened_files,
    step_key,
)


def test_combination(
    combination: Combination,
    bake: Callable[..., BakedProject],
    template: Template,
    timings: Timings,
    step_results: StepResults,
    tmp_path: Path,
    request: pytest.FixtureRequest,
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

    if project.replayed_lock:
        timings.reused(REPLAYED_LOCK, *project.replayed_lock)
    if keep_locks := request.config.option.keep_locks:
        kept = Path(keep_locks, combination.id)
        kept.mkdir(parents=True, exist_ok=True)
        for name in ("pyproject.toml", "uv.lock"):
            shutil.copyfile(project.path / name, kept / name)

    inputs = project_inputs(project.path)
    python = find_python(str(project.answers["python_version"]))

    failures += checked_steps(project, combination.id, step_results, timings, tmp_path, inputs)

    with timings.step("commands"):
        # What the "Next" message and the README tell a user to run, in this environment.
        message = template.hook("post_gen_project").next_steps(project.answers)
        check = CommandCheck(project, message, tmp_path)
        failures += [f"[commands] {problem}" for problem in check.static_problems]
        failures += [f"[commands] {problem}" for problem in check.sync_problems()]
        plan, plan_env = check.key_parts()
        key = step_key(inputs, "commands", [plan], python, plan_env)
        run = partial(probe_commands, combination.id, check, tmp_path)
        result, reused = reuse_or_run(step_results, timings, "commands", key, run)
        problems = check.problems(result.data) + unread_problems(result.data)
        failures += [f"[commands] {problem}{reused}" for problem in problems]

    with timings.step("security"):
        command = bandit_command()
        key = step_key(inputs, "security", [command], sys.executable, project.env)
        run = partial(bandit_findings, combination.id, project, command, tmp_path)
        result, reused = reuse_or_run(step_results, timings, "security", key, run)
        failures += [f"[security] {problem}{reused}" for problem in result.failures]

    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


def probe_commands(combination: str, check: CommandCheck, scratch: Path) -> StepResult:
    """The commands' probe report, and the project files no step should read that its
    processes opened."""
    listing = scratch / "commands-opened-files.txt"
    report = check.probe(recording_opened_files(check.env, check.project.path, listing))
    report["unread"] = opened_unread(listing, check.project.path)
    return StepResult(combination, [], report)


def bandit_command() -> tuple[str, ...]:
    """bandit over the project's source, run from the template's environment so the rendered
    project need not depend on it."""
    return (str(Path(sys.executable).with_name("bandit")), "-r", "src", "-q", "-f", "txt")


def bandit_findings(
    combination: str, project: BakedProject, command: Sequence[str], scratch: Path
) -> StepResult:
    """What bandit reports. A false positive gets a `# nosec BXXX` with its reason in the
    template, never a skip here."""
    listing = scratch / "security-opened-files.txt"
    env = recording_opened_files(project.env, project.path, listing)
    result = project.run(*command, timeout=120, env=env)
    failures = [] if result.returncode == 0 else [(result.stdout + result.stderr).strip()]
    unread = opened_unread(listing, project.path)
    return StepResult(combination, failures + unread_problems({"unread": unread}))
