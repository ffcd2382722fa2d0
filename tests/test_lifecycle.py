"""A project made from the template can follow it: cruft sees when the template moves,
brings the change in, and switches a feature on (and off) after the fact; cookiecutter
accepts every answer on its command line and replays a project exactly.

The tests marked `lifecycle` render projects from a git copy of the template and run the
projects' own checks; `-m "not lifecycle"` leaves them out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from baking import (
    PROJECT_DIR_NAME,
    TEMPLATE_ROOT,
    BakedProject,
    Template,
    feature_problems,
    short_name,
    write_cookiecutter_config,
)
from lifecycle import (
    GitRepo,
    answers_of,
    check_failures,
    cookiecutter,
    copy_template,
    cruft,
    cruft_create,
    cruft_state,
    files_under,
    must,
    output_of,
    rendered_files,
    tree_differences,
)
from step_reuse import StepResults, describe_reuses

VERSION_KEY = "_template_version"

# Features that `cruft update --variables-to-update` must be able to switch on.
SWITCHED_FEATURES = ["use_redis_cache", "use_background_jobs", "use_kubernetes"]

# Answers for the free-text questions, each unlike its default and valid for the hooks.
TEXT_ANSWERS = {
    "project_name": "Replay Check",
    "project_slug": "replay-check-service",
    "package_name": "replay_check_app",
    "description": "Rendered twice, the second time from the replay file.",
    "author_name": "Ada Lovelace",
    "author_email": "ada@example.org",
    "version": "2.3.4",
}

# What commit B of the template adds to every project: a test of its own, so the project's
# test run shows the update arrived, and a line in an existing file.
ARRIVING_TEST = "tests/test_template_update.py"
ARRIVING_TEST_TEXT = '''"""Brought in by a template update."""

from pathlib import Path


def test_the_template_update_arrived() -> None:
    assert Path(__file__).name == "test_template_update.py"
'''
IGNORED_BY_B = "/template-update-check/\n"


@pytest.fixture
def tool_env(project_env: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The rendered projects' environment, with cookiecutter's user config (replay files,
    cloned templates, default answers) kept inside this test's directory."""
    config = write_cookiecutter_config(tmp_path)
    return {**project_env, "COOKIECUTTER_CONFIG": str(config)}


@pytest.fixture
def template_repo(template: Template, tmp_path: Path, tool_env: dict[str, str]) -> GitRepo:
    return copy_template(template.root, tmp_path / "template", tool_env)


def create_project(
    template_repo: GitRepo, directory: Path, env: dict[str, str], **answers: Any
) -> GitRepo:
    """`cruft create` a project, make it a git repository and commit it, as a user would."""
    project = GitRepo(cruft_create(template_repo, directory, env, **answers), env).init()
    project.commit_all("Generated from the template")
    return project


def baked(project: GitRepo) -> BakedProject:
    return BakedProject(project.path, answers_of(project.path), project.env)


def switch(project: GitRepo, feature: str, *, on: bool) -> None:
    """`cruft update --variables-to-update '{"<feature>": <on>}'`, without asking."""
    change = json.dumps({feature: on})
    update = ("update", "--skip-apply-ask", "--variables-to-update", change)
    must(cruft(*update, cwd=project.path, env=project.env))


@pytest.fixture
def assert_checks_pass(
    project_env: dict[str, str],
    step_results: StepResults,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> Callable[[GitRepo], None]:
    """Checks a project as the matrix checks its combination: a step whose inputs are
    byte-identical to a combination's takes that one's result (or gives it this one's). They
    run in the rendered projects' environment, without this test's cookiecutter config."""

    def check(project: GitRepo) -> None:
        checked = BakedProject(project.path, answers_of(project.path), project_env)
        failures, reuses = check_failures(checked, request.node.name, step_results, tmp_path)
        if reuses:
            request.node.user_properties.append(("reused", describe_reuses(reuses)))
        if failures:
            pytest.fail("\n\n".join(failures), pytrace=False)

    return check


# --- the template's version ------------------------------------------------------------------


def test_the_template_declares_a_version(template: Template) -> None:
    version = template.declared.get(VERSION_KEY)
    assert isinstance(version, str), f"cookiecutter.json has no {VERSION_KEY}"
    assert re.fullmatch(r"[0-9]+\.[0-9]+\.[0-9]+", version), version


def test_the_changelog_leads_with_the_template_version(template: Template) -> None:
    changelog = (TEMPLATE_ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    released = re.findall(r"^## \[([0-9][^\]]*)\]", changelog, flags=re.MULTILINE)
    assert released, "CHANGELOG.md has no released version"
    assert released[0] == template.declared[VERSION_KEY], (
        f"CHANGELOG.md's newest release is {released[0]}, "
        f"cookiecutter.json says {template.declared[VERSION_KEY]}"
    )


# --- cruft -----------------------------------------------------------------------------------


@pytest.mark.lifecycle
def test_cruft_update_brings_a_template_change_into_a_project(
    template_repo: GitRepo,
    tool_env: dict[str, str],
    tmp_path: Path,
    assert_checks_pass: Callable[[GitRepo], None],
) -> None:
    project = create_project(template_repo, tmp_path / "projects", tool_env)
    created = cruft_state(project.path)
    assert created["commit"] == template_repo.head()
    old_version = created["context"]["cookiecutter"][VERSION_KEY]

    # The project's own history: its environment (uv.lock is committed) and an edit of its own.
    baked(project).install()
    readme = project.path / "README.md"
    title, rest = readme.read_text(encoding="utf-8").split("\n", 1)
    readme.write_text(f"{title} (ours)\n{rest}", encoding="utf-8")
    project.commit_all("Our environment and title")

    # Commit B of the template: a new version, a new file, a changed file.
    new_version = f"{old_version}+update-check"
    declared = json.loads((template_repo.path / "cookiecutter.json").read_text(encoding="utf-8"))
    template_repo.write("cookiecutter.json", json.dumps({**declared, VERSION_KEY: new_version}))
    template_repo.write(f"{PROJECT_DIR_NAME}/{ARRIVING_TEST}", ARRIVING_TEST_TEXT)
    template_repo.append(f"{PROJECT_DIR_NAME}/.gitignore", IGNORED_BY_B)
    commit_b = template_repo.commit_all("B: a template change")

    check = cruft("check", cwd=project.path, env=tool_env)
    assert check.returncode != 0, output_of(check)
    assert "out of date" in check.stdout, output_of(check)

    must(cruft("update", "--skip-apply-ask", cwd=project.path, env=tool_env))

    state = cruft_state(project.path)
    assert state["commit"] == commit_b
    assert state["context"]["cookiecutter"][VERSION_KEY] == new_version
    updated = baked(project)
    assert updated.read(ARRIVING_TEST) == ARRIVING_TEST_TEXT
    assert updated.read(".gitignore").endswith(IGNORED_BY_B)
    assert updated.read("README.md").startswith(f"{title} (ours)\n"), "the project's edit is lost"
    assert new_version in updated.read("README.md"), "the README names the old template version"
    assert [name for name in project.files() if name.endswith((".rej", ".orig"))] == []
    must(cruft("check", cwd=project.path, env=tool_env))
    assert_checks_pass(project)


@pytest.mark.lifecycle
@pytest.mark.parametrize("feature", SWITCHED_FEATURES, ids=short_name)
def test_cruft_update_switches_a_feature_on_and_off(
    feature: str,
    template: Template,
    template_repo: GitRepo,
    tool_env: dict[str, str],
    tmp_path: Path,
    assert_checks_pass: Callable[[GitRepo], None],
) -> None:
    project = create_project(template_repo, tmp_path / "projects", tool_env, **{feature: False})
    without = rendered_files(project)

    switch(project, feature, on=True)

    # Exactly what rendering with the feature on gives: its package and tests, and its wiring
    # in the shared files (settings, app, pyproject, compose, README) and .cruft.json.
    fresh = cruft_create(template_repo, tmp_path / "fresh", tool_env, **{feature: True})
    assert tree_differences(rendered_files(project), files_under(fresh)) == []
    switched = baked(project)
    assert switched.answers[feature] is True
    manifest = template.hook("post_gen_project").MANIFEST
    assert feature_problems(switched, manifest) == []
    assert_checks_pass(project)

    # And back: the project is again what it was before the feature came.
    project.commit_all("With the feature")
    switch(project, feature, on=False)
    assert tree_differences(rendered_files(project), without, ("the project", "the original")) == []


# --- cookiecutter ----------------------------------------------------------------------------


def command_line_answers(template: Template) -> dict[str, str]:
    """`key=value` text for every question in cookiecutter.json, none at its default but a
    toggle that another one needs (use_docker, for use_kubernetes), which stays on."""
    answers = {}
    for key, default in template.declared.items():
        if key.startswith("_"):
            continue
        if isinstance(default, bool):
            answers[key] = str(not default).lower()
        elif isinstance(default, list):
            answers[key] = str(default[-1])
        elif key in TEXT_ANSWERS:
            answers[key] = TEXT_ANSWERS[key]
        else:
            pytest.fail(f"cookiecutter.json asks {key!r}: give it an answer in TEXT_ANSWERS")
    for toggle, (needed, _) in template.requirements.items():
        if answers[toggle] == "true":
            answers[needed] = "true"
    return answers


def as_typed(template: Template, answers: dict[str, str]) -> dict[str, Any]:
    return {
        key: value == "true" if isinstance(template.declared[key], bool) else value
        for key, value in answers.items()
    }


@pytest.mark.lifecycle
def test_cookiecutter_takes_every_answer_on_the_command_line_and_replays_it(
    template: Template, template_repo: GitRepo, tool_env: dict[str, str], tmp_path: Path
) -> None:
    answers = command_line_answers(template)
    first, second = tmp_path / "first", tmp_path / "second"
    pairs = [f"{key}={value}" for key, value in answers.items()]
    source = str(template_repo.path)
    must(cookiecutter("--no-input", "-o", str(first), source, *pairs, cwd=tmp_path, env=tool_env))

    replay_file = tmp_path / "replay" / f"{template_repo.path.name}.json"
    recorded = json.loads(replay_file.read_text(encoding="utf-8"))["cookiecutter"]
    assert {key: recorded[key] for key in answers} == as_typed(template, answers)
    assert recorded[VERSION_KEY] == template.declared[VERSION_KEY]

    must(cookiecutter("--replay", "-o", str(second), source, cwd=tmp_path, env=tool_env))
    slug = answers["project_slug"]
    assert [path.name for path in second.iterdir()] == [slug]
    made, replayed = files_under(first / slug), files_under(second / slug)
    assert made, "the first render is empty"
    assert tree_differences(replayed, made, ("the replay", "the first render")) == []
