"""What the lifecycle tests share: a git repository holding a copy of the template, the
cruft and cookiecutter command lines, and ways to compare a project's files.

cruft keeps a project in step with its template through git: it records the template
commit in `.cruft.json`, renders the template at that commit and at the new one (running
the hooks both times, so both renders are pruned), and applies the difference between the
two renders to the project as a three-way merge.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from baking import BakedProject, StepFailed, Timings
from project_checks import checked_steps
from step_reuse import WRITTEN, StepResults

# Commits made by the tests: a fixed author, no signing, whatever the user's git config says.
GIT_OPTIONS = (
    "-c",
    "user.name=Template Tests",
    "-c",
    "user.email=template-tests@example.com",
    "-c",
    "commit.gpgsign=false",
    "-c",
    "init.defaultBranch=main",
)

# Written by `uv sync` in the project, not rendered by the template.
NOT_RENDERED = frozenset({"uv.lock"})

# `git ls-files` options that list a work tree's files: tracked, and untracked but not ignored.
_WORK_TREE_FILES = ("--cached", "--others", "--exclude-standard", "-z")

# Caches that a copy of a template outside git must not carry along.
_NOT_TEMPLATE = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    ".pytest_cache",
    ".ruff_cache",
    ".mypy_cache",
    ".results",
    ".tools",
)


def run(
    args: Sequence[str], cwd: Path, env: Mapping[str, str], timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(args),
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def output_of(result: subprocess.CompletedProcess[str]) -> str:
    return f"`{' '.join(result.args)}` exited {result.returncode}\n{result.stdout}{result.stderr}"


def must(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    if result.returncode != 0:
        raise StepFailed(output_of(result))
    return result


class GitRepo:
    """A work tree whose every change the tests commit themselves."""

    def __init__(self, path: Path, env: Mapping[str, str]) -> None:
        self.path = path
        self.env = env

    def git(self, *args: str) -> str:
        return must(run(["git", *GIT_OPTIONS, *args], self.path, self.env)).stdout.strip()

    def init(self) -> GitRepo:
        self.git("init", "--quiet")
        return self

    def commit_all(self, message: str) -> str:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "--message", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def is_clean(self) -> bool:
        return self.git("status", "--porcelain") == ""

    def files(self) -> list[str]:
        """Tracked files and untracked ones that .gitignore does not exclude."""
        listed = self.git("ls-files", *_WORK_TREE_FILES)
        return sorted({name for name in listed.split("\0") if name and (self.path / name).exists()})

    def write(self, relative: str, text: str) -> None:
        target = self.path / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")

    def append(self, relative: str, text: str) -> None:
        with (self.path / relative).open("a", encoding="utf-8") as file:
            file.write(text)


def copy_template(source: Path, destination: Path, env: Mapping[str, str]) -> GitRepo:
    """A new git repository holding the template as it is in `source`'s work tree now,
    uncommitted edits included: cruft reads templates only from git. In a git work tree the
    copy takes what git would (tracked files and untracked ones not ignored)."""
    listed = run(["git", "ls-files", *_WORK_TREE_FILES], source, env)
    if listed.returncode == 0:
        for name in filter(None, listed.stdout.split("\0")):
            if (source / name).is_file():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source / name, destination / name)
    else:
        shutil.copytree(source, destination, ignore=_NOT_TEMPLATE)
    repo = GitRepo(destination, env).init()
    repo.commit_all("The template under test")
    return repo


# --- cruft and cookiecutter ------------------------------------------------------------------


def cruft(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "cruft", *args], cwd, env)


def cookiecutter(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    return run([sys.executable, "-m", "cookiecutter", *args], cwd, env)


def cruft_create(
    template: GitRepo, output_dir: Path, env: Mapping[str, str], **answers: Any
) -> Path:
    """`cruft create --no-input` into an empty `output_dir`; the project's path."""
    output_dir.mkdir(parents=True, exist_ok=True)
    args = ["create", str(template.path), "--no-input", "--output-dir", str(output_dir)]
    if answers:
        args += ["--extra-context", json.dumps(answers)]
    must(cruft(*args, cwd=output_dir, env=env))
    (project,) = [path for path in output_dir.iterdir() if path.is_dir()]
    return project


def cruft_state(project: Path) -> dict[str, Any]:
    state: dict[str, Any] = json.loads((project / ".cruft.json").read_text(encoding="utf-8"))
    return state


def answers_of(project: Path) -> dict[str, Any]:
    """The answers a cruft project was rendered with, as `.cruft.json` records them."""
    answers: dict[str, Any] = cruft_state(project)["context"]["cookiecutter"]
    return answers


# --- comparing projects ----------------------------------------------------------------------


def rendered_files(project: GitRepo) -> dict[str, bytes]:
    """The project's files by relative path, less what its .gitignore excludes and the lock:
    what a fresh render of the same answers and commit must hold, `.cruft.json` included."""
    return {
        name: (project.path / name).read_bytes()
        for name in project.files()
        if name not in NOT_RENDERED
    }


def files_under(root: Path) -> dict[str, bytes]:
    """Every file below `root` by relative path, less the lock, for projects that are not git
    repositories."""
    return {
        path.relative_to(root).as_posix(): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and path.relative_to(root).as_posix() not in NOT_RENDERED
    }


def tree_differences(
    actual: Mapping[str, bytes],
    expected: Mapping[str, bytes],
    names: tuple[str, str] = ("the project", "the fresh render"),
) -> list[str]:
    """What differs between two sets of files, one line per path."""
    ours, theirs = names
    return [
        *(f"{path}: only in {ours}" for path in sorted(actual.keys() - expected.keys())),
        *(f"{path}: only in {theirs}" for path in sorted(expected.keys() - actual.keys())),
        *(
            f"{path}: differs between {ours} and {theirs}"
            for path in sorted(actual.keys() & expected.keys())
            if actual[path] != expected[path]
        ),
    ]


def check_failures(
    project: BakedProject, label: str, results: StepResults, scratch: Path
) -> tuple[list[str], dict[str, str]]:
    """The project's lint, types and tests, as the matrix runs them: what failed, and the
    steps whose result came from a matrix combination with byte-identical inputs (step ->
    "combination #hash"). They run on a copy of the project's files, its git metadata left
    out (no check reads it, and the step's key could not hash it), in an environment built
    there."""
    checked = scratch / "checked" / project.path.name
    shutil.copytree(project.path, checked, ignore=shutil.ignore_patterns(".git", *WRITTEN))
    copy = BakedProject(checked, project.answers, project.env)
    try:
        copy.install()
    except StepFailed as error:
        return [f"[env] {error}"], {}
    timings = Timings()
    return checked_steps(copy, label, results, timings, scratch), timings.reuses
