"""The feature -> paths manifest in post_gen_project names real template files."""

from __future__ import annotations

from pathlib import PurePosixPath

from baking import Template


def test_every_listed_path_exists_in_the_template(template: Template, manifest_path: str) -> None:
    assert template.project_path(manifest_path).exists(), (
        f"{manifest_path} is in the manifest but not in the template"
    )


def test_every_listed_path_is_a_plain_relative_path(manifest_path: str) -> None:
    path = PurePosixPath(manifest_path)
    assert not path.is_absolute()
    assert ".." not in path.parts
    assert str(path) == manifest_path  # no "./", doubled or trailing slashes
    assert all(part in {"{package}", "{slug}"} or "{" not in part for part in path.parts)


def test_the_manifest_covers_exactly_the_toggles(template: Template) -> None:
    keys = template.hook("post_gen_project").MANIFEST
    assert set(template.toggles) <= set(keys)
    assert {toggle for key in keys for toggle in key.split("+")} == set(template.toggles)
