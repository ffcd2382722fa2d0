"""Remove the files of disabled features, then say what to run next.

`MANIFEST` is the only place that knows which files belong to which feature; the template's
tests import it to prove every path exists in the template and that pruning leaves exactly
the enabled features behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

# Rendered by cookiecutter; see the note in pre_gen_project.py.
_ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

# Feature toggle -> paths relative to the project root; `{package}` is the package name and
# `{slug}` the project slug (the Helm chart's directory).
# A key may join toggles with "+" for files that only make sense when all of them are on
# (the cache's metrics, say). A path listed under several keys stays while any of them is on.
MANIFEST: dict[str, tuple[str, ...]] = {
    "use_auth": (
        "src/{package}/auth",
        "tests/auth",
        "alembic.ini",
        "scripts/bench_auth.py",
    ),
    "use_redis_cache": (
        "src/{package}/cache",
        "tests/cache",
        "src/{package}/redis_client.py",
        "tests/redis_server.py",
        "scripts/bench_cache.py",
    ),
    "use_background_jobs": (
        "src/{package}/jobs",
        "src/{package}/worker.py",
        "tests/jobs",
        "src/{package}/redis_client.py",
        "tests/redis_server.py",
        "scripts/bench_jobs.py",
    ),
    "use_prometheus": (
        "src/{package}/metrics",
        "tests/metrics",
    ),
    "use_docker": (
        "Dockerfile",
        ".dockerignore",
        "compose.yaml",
    ),
    "use_kubernetes": ("deploy",),
    "use_prometheus+use_redis_cache": (
        "src/{package}/metrics/response_cache.py",
        "tests/metrics/test_cache.py",
    ),
    "use_prometheus+use_background_jobs": (
        "src/{package}/metrics/jobs.py",
        "src/{package}/metrics/worker.py",
        "tests/metrics/test_jobs.py",
    ),
    "use_kubernetes+use_auth": ("deploy/helm/{slug}/templates/migrations-job.yaml",),
    "use_kubernetes+use_background_jobs": (
        "deploy/helm/{slug}/templates/worker-deployment.yaml",
        "deploy/helm/{slug}/templates/worker-hpa.yaml",
        "deploy/helm/{slug}/templates/worker-networkpolicy.yaml",
        "deploy/helm/{slug}/templates/worker-pdb.yaml",
    ),
    "use_kubernetes+use_prometheus": ("deploy/helm/{slug}/templates/api-servicemonitor.yaml",),
    "use_kubernetes+use_prometheus+use_background_jobs": (
        "deploy/helm/{slug}/templates/worker-podmonitor.yaml",
    ),
}


def is_on(key: str, answers: Mapping[str, Any]) -> bool:
    """Whether a manifest key's toggles are all on."""
    return all(answers[toggle] for toggle in key.split("+"))


def enabled_paths(answers: Mapping[str, Any]) -> set[str]:
    """Manifest paths (unresolved) that at least one enabled feature claims."""
    return {path for key, paths in MANIFEST.items() if is_on(key, answers) for path in paths}


def disabled_paths(answers: Mapping[str, Any]) -> set[str]:
    """Manifest paths (unresolved) that no enabled feature claims: these go."""
    listed = {path for paths in MANIFEST.values() for path in paths}
    return listed - enabled_paths(answers)


def resolve(path: str, answers: Mapping[str, Any]) -> PurePosixPath:
    """A manifest path with its placeholders filled in from the answers."""
    filled = path.replace("{package}", answers["package_name"])
    return PurePosixPath(filled.replace("{slug}", answers["project_slug"]))


def prune(root: Path, answers: Mapping[str, Any]) -> list[PurePosixPath]:
    """Delete what the disabled features own under `root`, and directories that this leaves
    empty; return the manifest paths removed."""
    removed = []
    for path in sorted(disabled_paths(answers)):
        relative = resolve(path, answers)
        target = root / relative
        if any(parent in removed for parent in relative.parents):
            removed.append(relative)  # it went with a directory pruned before it
            continue
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            print(f"warning: {relative} is in the manifest but not in the project", file=sys.stderr)
            continue
        removed.append(relative)
        _remove_empty_parents(root, target)
    return removed


def _remove_empty_parents(root: Path, removed: Path) -> None:
    """A directory that held only pruned files (say `scripts/`) goes too."""
    for parent in removed.parents:
        if parent == root or root not in parent.parents or any(parent.iterdir()):
            return
        parent.rmdir()


def lock_dependencies(root: Path, answers: Mapping[str, Any]) -> None:
    """Write uv.lock, which the Dockerfile installs from. Nothing here can stop generation:
    without uv, the registry or enough time, it says the one command to run instead.
    PRSM_TEMPLATE_SKIP_LOCK=1 skips it (the template's own tests decide when to lock)."""
    if not answers["use_docker"] or os.environ.get("PRSM_TEMPLATE_SKIP_LOCK") == "1":
        return
    hint = "uv.lock was not written: run `uv lock` in the project before building the image"
    uv = shutil.which("uv")
    if uv is None:
        print(f"note: uv is not on PATH; {hint}")
        return
    try:
        result = subprocess.run(
            [uv, "lock", "--quiet"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    except Exception as error:  # a lock is a convenience; the project is complete without it
        print(f"note: `uv lock` failed ({error}); {hint}")
        return
    if result.returncode != 0:
        reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
        print(f"note: `uv lock` failed ({reason}); {hint}")


# The "Next" message: what to run once the project exists, in order, as (toggles, command,
# comment). `toggles` is "" for every project, a toggle, or toggles joined by "|" for a step
# any of them needs; a toggle the answers do not have (one this template does not ask yet)
# counts as off. A step without a command is a note. `{slug}`, `{package}` and `{python}` are
# filled in from the answers. The template's tests run every command for each combination.
NEXT_STEPS: tuple[tuple[str, str, str], ...] = (
    ("", "cd {slug}", ""),
    ("", "uv sync", "Python {python} and the dependencies, in .venv"),
    (
        "use_redis_cache|use_background_jobs",
        "",
        "the service and its tests need Redis at REDIS_URL (redis://127.0.0.1:6379/0)",
    ),
    ("use_auth", "uv run alembic upgrade head", "the user tables, in {package}.db"),
    (
        "use_auth",
        "uv run {package} create-user alice --quota 100",
        "a user to log in as with Authorize in /docs; it asks for the password",
    ),
    (
        "",
        "uv run uvicorn --factory {package}.main:create_app --reload --log-config logging.yaml",
        "the service: open http://127.0.0.1:8000/docs",
    ),
    (
        "use_background_jobs",
        "uv run taskiq worker {package}.worker:broker",
        "in another terminal: the worker that runs queued jobs",
    ),
    ("", "uv run pytest", "the tests"),
    ("use_docker", "docker compose up --build --wait", "or the whole stack in containers"),
    (
        "use_kubernetes",
        "helm lint --strict deploy/helm/{slug}",
        "the Helm chart; the README's Kubernetes section installs it",
    ),
)


def step_applies(toggles: str, answers: Mapping[str, Any]) -> bool:
    return not toggles or any(answers.get(toggle) is True for toggle in toggles.split("|"))


def next_steps(answers: Mapping[str, Any]) -> str:
    fill = {
        "slug": answers["project_slug"],
        "package": answers["package_name"],
        "python": answers["python_version"],
    }
    features = [key.split("_")[-1] for key in MANIFEST if "+" not in key and answers.get(key)]
    steps = [
        (command.format(**fill), comment.format(**fill))
        for toggles, command, comment in NEXT_STEPS
        if step_applies(toggles, answers)
    ]
    lines = [f"Created {fill['slug']} with {', '.join(features) or 'no optional feature'}."]
    lines += [f"Note: {note}." for command, note in steps if not command]
    lines += ["Next:"]
    for command, comment in steps:
        if command:
            lines += [f"  # {comment}"] if comment else []
            lines += [f"  {command}"]
    return "\n".join(lines)


def main() -> int:
    answers = json.loads(_ANSWERS_JSON)
    prune(Path.cwd(), answers)
    lock_dependencies(Path.cwd(), answers)
    print(next_steps(answers))
    return 0


if __name__ == "__main__":
    sys.exit(main())
