"""The static Docker checks of docker_checks.py on a few representative combinations, the
checks catching a broken setup, and the post-generation lock step. No Docker engine is needed
(test_docker_images.py builds and runs the images)."""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from baking import BakedProject, Template, find_uv
from docker_checks import (
    WORKFLOW,
    docker_problems,
    lint_problems,
    structure_problems,
    workflow_problems,
)

# Docker with nothing else, Docker with everything: between them every service, the
# migration, the worker and the Prometheus entrypoint appear once and are absent once.
DOCKER_COMBINATIONS = {
    "docker-only": {"use_docker": True},
    "all-on": {
        "use_auth": True,
        "use_redis_cache": True,
        "use_background_jobs": True,
        "use_prometheus": True,
        "use_docker": True,
    },
}


def _bake(bake: Callable[..., BakedProject], template: Template, **on: bool) -> BakedProject:
    return bake(**{**dict.fromkeys(template.toggles, False), **on})


@pytest.mark.parametrize("toggles", DOCKER_COMBINATIONS.values(), ids=DOCKER_COMBINATIONS.keys())
def test_docker_checks_pass(
    bake: Callable[..., BakedProject], template: Template, toggles: dict[str, bool]
) -> None:
    project = _bake(bake, template, **toggles)

    problems = docker_problems(project.path, project.answers)

    assert not problems, "\n\n".join(problems)


def test_without_docker_the_workflow_still_runs_the_checks(
    bake: Callable[..., BakedProject], template: Template
) -> None:
    project = _bake(bake, template, use_auth=True, use_background_jobs=True)

    assert workflow_problems(project.path, project.answers) == []
    jobs = yaml.safe_load(project.read(".github/workflows/ci.yml"))["jobs"]
    assert set(jobs) == {"checks"}
    assert set(jobs["checks"]["services"]) == {"postgres", "redis"}
    assert not project.has_file("uv.lock")


# --- the checks fail when they should -----------------------------------------------------


def _edit(project: BakedProject, relative: str, old: str, new: str) -> None:
    text = project.read(relative)
    assert old in text, f"{relative} no longer contains {old!r}"
    (project.path / relative).write_text(text.replace(old, new, 1))


def test_the_static_checks_catch_a_broken_setup(
    bake: Callable[..., BakedProject], template: Template
) -> None:
    project = _bake(bake, template, use_docker=True, use_redis_cache=True)
    _edit(project, "Dockerfile", "USER 10001:10001", "USER root")
    _edit(
        project,
        "Dockerfile",
        "uv sync --locked --no-dev --no-install-project",
        "uv sync --no-install-project",
    )
    _edit(project, "Dockerfile", "--no-deps --offline", "--offline")
    python = project.answers["python_version"]
    _edit(project, "Dockerfile", f"FROM python:{python}-slim AS runtime", "FROM python:3.9-slim")
    _edit(project, "compose.yaml", "name: ", 'version: "3.8"\nname: ')
    _edit(
        project,
        "compose.yaml",
        "        condition: service_healthy",
        "        condition: service_started",
    )
    _edit(project, ".dockerignore", "**/.env\n", "")
    compose = yaml.safe_load(project.read("compose.yaml"))
    del compose["services"]["redis"]["healthcheck"]
    compose["services"]["api"]["read_only"] = False
    (project.path / "compose.yaml").write_text(yaml.safe_dump(compose, sort_keys=False))

    problems = "\n".join(
        lint_problems(project.path) + structure_problems(project.path, project.answers)
    )

    for expected in (
        r"hadolint:.*DL3002",  # last USER should not be root
        r"FROM python:3\.9-slim, expected python:3\.\d+-slim",
        r"`uv sync` without --locked --no-dev",
        r"runs as 'root'",
        r"the obsolete `version` key",
        r"service redis: no healthcheck",
        r"waits for redis with 'service_started'",
        r"lets \.env into the build context",
        r"Dockerfile:\d+: the final stage installs packages",
        r"service api: runs the image without read_only: true",
    ):
        assert re.search(expected, problems, flags=re.DOTALL), f"{expected!r} not in:\n{problems}"


def test_the_workflow_checks_catch_an_image_built_twice(
    bake: Callable[..., BakedProject], template: Template
) -> None:
    project = _bake(bake, template, use_docker=True)
    _edit(project, WORKFLOW, "up --detach --no-build --wait", "up --detach --build --wait")
    _edit(project, WORKFLOW, "load: true", "load: false")

    problems = "\n".join(workflow_problems(project.path, project.answers))

    assert "`docker compose up` builds the image again" in problems, problems
    assert "not loaded into the runner's engine" in problems, problems


# --- the post-generation lock step --------------------------------------------------------


@pytest.fixture(scope="module")
def post(template: Template) -> ModuleType:
    return template.hook("post_gen_project")


def _fake_uv(directory: Path, script: str) -> Path:
    directory.mkdir(exist_ok=True)
    uv = directory / "uv"
    uv.write_text(script)
    uv.chmod(uv.stat().st_mode | stat.S_IXUSR)
    return uv


@pytest.mark.parametrize(
    ("answers", "environment"),
    [({"use_docker": False}, {}), ({"use_docker": True}, {"PRSM_TEMPLATE_SKIP_LOCK": "1"})],
    ids=["docker-off", "skipped"],
)
def test_the_lock_step_runs_only_with_docker_and_unless_skipped(
    post: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    answers: dict[str, Any],
    environment: dict[str, str],
) -> None:
    _fake_uv(tmp_path / "bin", f"#!/bin/sh\ntouch {tmp_path}/ran\n")
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    for name, value in environment.items():
        monkeypatch.setenv(name, value)

    post.lock_dependencies(tmp_path, answers)

    assert not (tmp_path / "ran").exists()
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize(
    ("uv_script", "expected"),
    [
        (None, "uv is not on PATH"),
        ("#!/bin/sh\necho 'error: Failed to fetch: pypi.org' >&2\nexit 2\n", "Failed to fetch"),
        ("not a program\n", "`uv lock` failed"),
    ],
    ids=["no-uv", "registry-unreachable", "uv-unrunnable"],
)
def test_a_failed_lock_leaves_a_hint_and_never_stops_generation(
    post: ModuleType,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    uv_script: str | None,
    expected: str,
) -> None:
    monkeypatch.delenv("PRSM_TEMPLATE_SKIP_LOCK", raising=False)
    if uv_script is not None:
        _fake_uv(tmp_path / "bin", uv_script)
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))

    post.lock_dependencies(tmp_path, {"use_docker": True})

    out = capsys.readouterr().out
    assert expected in out
    assert "run `uv lock` in the project" in out


def test_a_docker_project_is_generated_with_a_current_lock(
    bake: Callable[..., BakedProject],
    template: Template,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("PRSM_TEMPLATE_SKIP_LOCK", raising=False)
    monkeypatch.setenv("PATH", f"{Path(find_uv()).parent}{os.pathsep}{os.environ['PATH']}")

    project = _bake(bake, template, use_docker=True)

    assert project.has_file("uv.lock")
    assert project.run(find_uv(), "lock", "--check", "--offline").returncode == 0
