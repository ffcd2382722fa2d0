"""The matrix reuses a step's result only for byte-identical inputs (step_reuse.py): any change
to what the step reads gives another key, and so a run of its own."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from baking import PROJECT_DIR_NAME, BakedProject, OnlineLocks, Template, combinations
from commands import CommandCheck
from project_checks import step_env, uses_postgres_for_tests
from step_reuse import (
    StepResult,
    StepResults,
    opened_unread,
    project_inputs,
    recording_opened_files,
    step_key,
)

COMMANDS = [("pytest",)]
PYTHON = "/usr/bin/python3.11"


def key_of(
    project: Path,
    *,
    step: str = "tests",
    commands: list[tuple[str, ...]] = COMMANDS,
    python: str = PYTHON,
    env: dict[str, str] | None = None,
) -> str:
    return step_key(project_inputs(project), step, commands, python, env or {})


@pytest.fixture
def project(bake: Callable[..., BakedProject]) -> Path:
    baked = bake(use_auth=True, use_docker=True, use_kubernetes=True)
    # As the environment step leaves it: uv.lock is one of the inputs.
    assert (baked.path / "uv.lock").is_file()
    return baked.path


@pytest.mark.parametrize(
    "changed",
    [
        "src/{package}/config.py",
        "tests/conftest.py",
        "pyproject.toml",
        "uv.lock",
        ".env.example",
        "alembic.ini",
        "logging.yaml",
    ],
)
def test_changing_a_file_a_step_reads_forces_a_run(project: Path, changed: str) -> None:
    path = project / changed.format(package="prsm_service")
    assert path.is_file(), path
    before = key_of(project)

    path.write_bytes(path.read_bytes() + b"\n")

    assert key_of(project) != before


def test_a_new_file_or_a_removed_one_forces_a_run(project: Path) -> None:
    before = key_of(project)
    (project / "tests" / "test_new.py").write_text("def test_new() -> None: ...\n")
    added = key_of(project)
    (project / "tests" / "test_new.py").unlink()
    (project / "src" / "prsm_service" / "serve.py").unlink()

    assert len({before, added, key_of(project)}) == 3


@pytest.mark.parametrize(
    "change",
    [
        {"python": "/usr/bin/python3.12"},
        {"commands": [("pytest", "-x")]},
        {"step": "types"},
        {"env": {"DATABASE_URL": "postgresql+asyncpg://postgres@127.0.0.1:5432/test"}},
        {"env": {"PRSM_TIMEOUT_SECONDS": "1"}},
    ],
    ids=["python", "commands", "step", "DATABASE_URL", "a setting"],
)
def test_changing_the_interpreter_commands_or_variables_forces_a_run(
    project: Path, change: dict[str, object]
) -> None:
    assert key_of(project, **change) != key_of(project)  # type: ignore[arg-type]


def test_files_no_step_reads_and_scratch_locations_are_not_inputs(project: Path) -> None:
    before = key_of(project, env={"MYPY_CACHE_DIR": "/a", "REDIS_URL": "redis://h:6379/0"})
    for unread in ("README.md", "Dockerfile", "compose.yaml", ".github/workflows/ci.yml"):
        (project / unread).write_text("changed\n")
    chart = next((project / "deploy" / "helm").iterdir())
    (chart / "values.yaml").write_text("changed: true\n")

    after = key_of(project, env={"MYPY_CACHE_DIR": "/b", "REDIS_URL": "redis://h:6379/1"})

    assert after == before


STEPS = ("lint", "types", "tests")


def test_kubernetes_twins_share_their_steps(bake: Callable[..., BakedProject]) -> None:
    keys = {}
    for name, answers in {
        "docker": {"use_docker": True, "use_kubernetes": False},
        "kubernetes": {"use_docker": True, "use_kubernetes": True},
    }.items():
        project = bake(use_redis_cache=True, **answers).path
        (project / "uv.lock").write_text("the same lock\n")
        keys[name] = {step: key_of(project, step=step) for step in STEPS}

    assert keys["kubernetes"] == keys["docker"]


def test_docker_twins_share_every_step(
    bake: Callable[..., BakedProject], template: Template, tmp_path: Path
) -> None:
    """A Docker-on project and its Docker-off twin share every step, auth's tests among them
    (only the all-on Docker combinations run those on PostgreSQL): the files the steps read
    are the same (the Dockerfile, compose file and their README section are read by none), and
    so are their locks, the hook's and the one the environment step resolves, and the
    variables each step runs with."""
    docker = bake(use_auth=True, use_redis_cache=True, use_docker=True)
    docker_copy = tmp_path / "docker" / docker.path.name
    shutil.copytree(docker.path, docker_copy)
    docker = BakedProject(docker_copy, docker.answers, docker.env)
    plain = bake(use_auth=True, use_redis_cache=True, use_docker=False)
    plain.install()
    assert (plain.path / "uv.lock").read_bytes() == (docker.path / "uv.lock").read_bytes()

    docker_files, plain_files = project_inputs(docker.path), project_inputs(plain.path)
    differing = {
        path
        for path in docker_files.keys() | plain_files.keys()
        if docker_files.get(path) != plain_files.get(path)
    }

    def keys(project: BakedProject) -> dict[str, str]:
        message = template.hook("post_gen_project").next_steps(project.answers)
        steps = {
            step: key_of(project.path, step=step, env=step_env(project, step)) for step in STEPS
        }
        return {**steps, "commands": commands_key(project, message, tmp_path / "scratch")}

    assert differing == set()
    assert keys(plain) == keys(docker)


def test_a_result_recorded_under_a_key_is_found_under_it_alone(tmp_path: Path) -> None:
    results = StepResults(tmp_path / "results")
    with results.claim("a") as earlier:
        assert earlier is None
        results.record("a", StepResult("auth+docker", ["[tests] failed"]))

    with results.claim("a") as earlier, results.claim("b") as other:
        assert earlier == StepResult("auth+docker", ["[tests] failed"])
        assert other is None


def test_a_step_that_reads_an_unhashed_file_is_reported(tmp_path: Path) -> None:
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    (project / "README.md").write_text("read me\n")
    (project / "src" / "module.py").write_text("\n")
    listing = tmp_path / "opened.txt"
    env = recording_opened_files({"PATH": "/usr/bin"}, project, listing)
    # A child process, as tests start servers: the listing covers it too.
    child = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'open(\"README.md\")'])"
    code = f"open('src/module.py').close(); {child}"

    subprocess.run([sys.executable, "-c", code], cwd=project, env=env, check=True)

    assert opened_unread(listing, project) == ["README.md"]


# --- the commands step: the plan of what runs, not the README's prose, is an input ---------


def commands_key(project: BakedProject, message: str, scratch: Path) -> str:
    check = CommandCheck(project, message, scratch)
    plan, env = check.key_parts()
    return step_key(project_inputs(project.path), "commands", [plan], PYTHON, env)


@pytest.fixture
def baked(bake: Callable[..., BakedProject]) -> BakedProject:
    return bake(use_auth=True, use_background_jobs=True, use_docker=True)


def test_changing_what_the_commands_run_or_read_forces_a_run(
    baked: BakedProject, template: Template, tmp_path: Path
) -> None:
    message = template.hook("post_gen_project").next_steps(baked.answers)
    before = commands_key(baked, message, tmp_path / "a")

    # Another scratch directory (another combination's) is no input; prose in the README
    # is none either, only the commands it gives.
    readme = baked.path / "README.md"
    readme.write_text(readme.read_text() + "\nMore words.\n")
    assert commands_key(baked, message, tmp_path / "b") == before

    readme.write_text(readme.read_text() + "\n```bash\nuv run alembic current\n```\n")
    assert commands_key(baked, message, tmp_path / "a") != before

    readme.write_text(readme.read_text().replace("uv run alembic current", ""))
    alembic_ini = baked.path / "alembic.ini"
    alembic_ini.write_text(alembic_ini.read_text() + "\n")
    assert commands_key(baked, message, tmp_path / "a") != before


def test_a_command_with_other_input_forces_a_run(
    baked: BakedProject, template: Template, tmp_path: Path
) -> None:
    message = template.hook("post_gen_project").next_steps(baked.answers)
    before = commands_key(baked, message, tmp_path)

    changed = message.replace("--quota 100", "--quota 50")
    assert changed != message
    assert commands_key(baked, changed, tmp_path) != before


# --- uv.lock: resolved offline only as the same pyproject.toml was online, to the byte -------


def test_a_lock_is_replayed_only_for_the_same_pyproject_and_to_the_byte(
    bake: Callable[..., BakedProject], online_locks: OnlineLocks
) -> None:
    answers = {"use_redis_cache": True, "use_docker": True, "python_version": "3.12"}
    first = bake(**answers)
    online = (first.path / "uv.lock").read_bytes()
    key = first.lock_key()
    if first.replayed_lock is None:  # this run had not locked it yet: now it has
        assert online_locks.find(key) == (first.label, online)

    again = bake(**answers)
    assert again.replayed_lock == (online_locks.find(key)[0], key)
    assert (again.path / "uv.lock").read_bytes() == online

    # Another pyproject.toml is another key: no replay.
    other = bake(**{**answers, "use_prometheus": not first.answers["use_prometheus"]})
    assert other.lock_key() != key
    assert other.replayed_lock is None or other.replayed_lock[1] == other.lock_key()

    # An offline lock that differs from the online one is not kept: rendered again, online.
    online_locks.record(key, "a tampered record", b"not the lock\n")
    retried = bake(**answers)
    assert retried.replayed_lock is None
    assert (retried.path / "uv.lock").read_bytes() == online
    online_locks.record(key, first.label, online)


# --- mypy: one cache for every project of a worker -------------------------------------------


def test_each_worker_keeps_a_mypy_cache_of_its_own(
    project_env: dict[str, str], workdir: Path
) -> None:
    """Not one for all workers: mypy trusts a cached module whose relative path, size and
    mtime second match, and two workers can render two combinations' api.py, of the same size
    and other contents, in the same second (see the project_env fixture)."""
    assert Path(project_env["MYPY_CACHE_DIR"]).is_relative_to(workdir)


def test_the_mypy_cache_checks_a_project_at_another_path_anew(
    bake: Callable[..., BakedProject], tmp_path: Path
) -> None:
    """A worker's projects share its mypy cache, a cruft test's copy at another path among
    them: what one project left must not pass another's error."""
    project = bake(use_prometheus=False, use_docker=False)
    project.install()
    env = {**project.env, "MYPY_CACHE_DIR": str(tmp_path / "mypy-cache")}
    mypy = (".venv/bin/python", "-m", "mypy", "src", "tests")
    assert project.run(*mypy, env=env).returncode == 0

    # The same project at another path, as another worker's (its environment moves along).
    moved = tmp_path / "elsewhere"
    project.path.rename(moved)
    elsewhere = BakedProject(moved, project.answers, project.env)
    assert elsewhere.run(*mypy, env=env).returncode == 0
    config = moved / "src" / project.package / "config.py"
    config.write_text(config.read_text() + "\nBROKEN: int = 'not an int'\n")

    result = elsewhere.run(*mypy, env=env)

    assert result.returncode == 1
    assert "config.py" in result.stdout
    assert 'Incompatible types in assignment (expression has type "str"' in result.stdout


# A line of Python that speaks to the user database, or sets up the one the tests use.
DATABASE_LINE = re.compile(
    r"database|sqlalchemy|asyncpg|aiosqlite|\bsessions?\b|sessions_for|statement", re.I
)


def test_every_database_line_meets_postgres(template: Template) -> None:
    """Only the all-on Docker combinations run their tests against PostgreSQL. That covers
    each auth code path on both databases only if no auth combination holds a line that
    speaks to the database which theirs lack: every such line of every auth combination's
    Python must be one of the PostgreSQL run's (the auth package itself renders the same in
    all of them)."""
    project = template.root / PROJECT_DIR_NAME
    sources = sorted(
        path.relative_to(project).as_posix()
        for folder in ("src", "tests")
        for path in (project / folder).rglob("*.py")
    )
    full = combinations(template, "full")
    (on_postgres,) = [
        c
        for c in full
        if uses_postgres_for_tests(c.answers)
        and not c.answers["use_kubernetes"]
        and c.python_version == template.default_python
    ]

    def database_lines(answers: Mapping[str, Any]) -> dict[str, set[str]]:
        rendered = template.render_files(sources, answers)
        return {
            source: {line.strip() for line in text.splitlines() if DATABASE_LINE.search(line)}
            for source, text in rendered.items()
        }

    covered = database_lines(on_postgres.answers)
    missing = [
        f"{combination.id}: {source}: {line}"
        for combination in full
        if combination.answers["use_auth"]
        for source, lines in database_lines(combination.answers).items()
        for line in sorted(lines - covered[source])
    ]
    assert not missing, "lines no PostgreSQL run executes:\n" + "\n".join(missing)
