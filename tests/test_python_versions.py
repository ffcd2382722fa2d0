"""Every place that names the Python version agrees with the python_version answer."""

from __future__ import annotations

import re
from collections.abc import Callable

from baking import BakedProject, Template


def test_every_pin_names_the_chosen_python(
    bake: Callable[..., BakedProject], template: Template, python_version: str
) -> None:
    project = bake(python_version=python_version, **dict.fromkeys(template.toggles, True))
    pyproject = project.pyproject()
    bare = python_version.replace(".", "")

    assert pyproject["project"]["requires-python"] == f">={python_version}"
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{bare}"
    assert pyproject["tool"]["mypy"]["python_version"] == python_version
    assert project.read(".python-version").strip() == python_version

    images = re.findall(r"^FROM\s+(\S+)", project.read("Dockerfile"), flags=re.MULTILINE)
    named = [image for image in images if re.search(r"python:?\d", image)]
    assert any(image.startswith(f"python:{python_version}-slim") for image in named), images
    pinned = re.compile(rf"python:?{re.escape(python_version)}(?!\d)")
    assert all(pinned.search(image) for image in named), images

    workflow = ".github/workflows/ci.yml"
    if project.has_file(workflow):
        pins = re.findall(r"python-version:\s*[\"']?([\d.]+)", project.read(workflow))
        assert pins, f"{workflow} names no python-version"
        assert set(pins) == {python_version}, pins
