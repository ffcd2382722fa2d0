"""The dependency audit takes a combination's pins from the lock the matrix left for it
(`pytest --keep-locks DIR`, `dependency_audit.py --locks DIR`) and locks only the others."""

from __future__ import annotations

import shutil
import subprocess
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import dependency_audit
from baking import BakedProject


def test_a_kept_lock_is_audited_as_it_is(
    bake: Callable[..., BakedProject], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = bake(use_redis_cache=True, use_docker=True)
    kept = tmp_path / "locks" / "cache+docker"
    kept.mkdir(parents=True)
    for name in ("pyproject.toml", "uv.lock"):
        shutil.copyfile(project.path / name, kept / name)
    ran: list[list[str]] = []
    real_run = subprocess.run

    def recording_run(args: list[str], *rest: Any, **options: Any) -> Any:
        ran.append([str(arg) for arg in args])
        return real_run(args, *rest, **options)

    monkeypatch.setattr(dependency_audit.subprocess, "run", recording_run)

    assert dependency_audit.is_locked(kept)
    pins = dependency_audit.resolved_pins(kept)

    assert [args[1] for args in ran] == ["export"]  # no `uv lock`: the lock is the matrix's
    packages = tomllib.loads((project.path / "uv.lock").read_text())["package"]
    redis = next(package["version"] for package in packages if package["name"] == "redis")
    assert dependency_audit.Pin("redis", redis) in pins


def test_a_combination_without_a_kept_lock_is_locked_here(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\nversion = '0'\n")

    assert not dependency_audit.is_locked(tmp_path)
    assert dependency_audit.project_files(tmp_path)[1] == b""
