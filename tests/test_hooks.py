"""The generation hooks: their functions directly, then through cookiecutter."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from cookiecutter.exceptions import FailedHookException

from baking import Template

CYRILLIC_E = "\u0435"  # looks like the Latin "e"


@pytest.fixture(scope="module")
def pre(template: Template) -> ModuleType:
    return template.hook("pre_gen_project")


@pytest.fixture(scope="module")
def post(template: Template) -> ModuleType:
    return template.hook("post_gen_project")


@pytest.fixture(scope="module")
def answers(template: Template) -> dict[str, Any]:
    """What cookiecutter would hand the hooks for the template's default answers."""
    return template.answers()


def answer_id(change: dict[str, Any]) -> str:
    return ",".join(f"{key}={value!r}" for key, value in change.items())[:48]


# --- pre_gen_project: refusing answers ----------------------------------------------------

REFUSED = [
    ({"project_slug": ""}, "project_slug is empty"),
    ({"project_slug": "My-Service"}, "must be lowercase letters and digits"),
    ({"project_slug": "1service"}, "starting with a letter"),
    ({"project_slug": "my--service"}, "joined by single '-'"),
    ({"project_slug": "service-"}, "joined by single '-'"),
    ({"project_slug": "my_service"}, "joined by single '-'"),
    ({"project_slug": "../escape"}, "outside the output directory"),
    ({"project_slug": "/srv/escape"}, "outside the output directory"),
    ({"project_slug": "nested/name"}, "is a path, not a name"),
    ({"project_slug": f"prsm-s{CYRILLIC_E}rvice"}, "U+0435 CYRILLIC SMALL LETTER IE"),
    ({"project_slug": "svc;reboot"}, "shell metacharacter ';'"),
    ({"project_slug": "svc$(id)"}, "shell metacharacter '$'"),
    ({"project_slug": "svc name"}, "shell metacharacter ' '"),
    ({"project_slug": "s" * 65}, "longer than 64"),
    ({"project_slug": "fastapi"}, "name of a dependency"),
    ({"project_slug": "pydantic-settings"}, "name of a dependency"),
    ({"project_slug": "pytest-xdist"}, "name of a dependency"),
    ({"package_name": "class"}, "is a Python keyword"),
    ({"package_name": "json"}, "shadow the standard library"),
    ({"package_name": "typing"}, "shadow the standard library"),
    ({"package_name": "test"}, "taken by the project's layout or tests"),
    ({"package_name": "tests"}, "taken by the project's layout or tests"),
    ({"package_name": "src"}, "taken by the project's layout or tests"),
    ({"package_name": "fastapi"}, "shadow a dependency"),
    ({"package_name": "pydantic_settings"}, "shadow a dependency"),
    ({"package_name": "taskiq_redis"}, "shadow a dependency"),
    ({"package_name": "jwt"}, "shadow a dependency"),
    ({"package_name": "prometheus_client"}, "shadow a dependency"),
    ({"package_name": "xdist"}, "shadow a dependency"),
    ({"package_name": "execnet"}, "shadow a dependency"),
    ({"package_name": "My_Service"}, "must be lowercase letters and digits"),
    ({"package_name": "_service"}, "starting with a letter"),
    ({"package_name": "my-service"}, "joined by single '_'"),
    ({"package_name": f"s{CYRILLIC_E}rvice"}, "non-ASCII character"),
    ({"project_name": ""}, "project_name is empty"),
    ({"project_name": " Padded"}, "starts or ends with whitespace"),
    ({"project_name": "Two\nLines"}, "control character"),
    ({"description": 'Say "hi"'}, "contains a double quote"),
    ({"author_name": "Back\\slash"}, "contains a backslash"),
    ({"author_email": "nobody"}, "not an address"),
    ({"author_email": "a@b"}, "not an address"),
    ({"author_email": "a b@example.com"}, "not an address"),
    ({"author_email": ".dot@example.com"}, "not an address"),
    ({"author_email": "me@example.com;reboot"}, "not an address"),
    ({"author_email": f"m{CYRILLIC_E}@example.com"}, "not an address"),
    ({"version": ""}, "not a canonical PEP 440 version"),
    ({"version": "v1.0"}, "not a canonical PEP 440 version"),
    ({"version": "1.0.0-beta"}, "not a canonical PEP 440 version"),
    ({"version": "1.0RC1"}, "not a canonical PEP 440 version"),
    ({"version": "1..0"}, "not a canonical PEP 440 version"),
    ({"version": "latest"}, "not a canonical PEP 440 version"),
    ({"python_version": "3.10"}, "python_version '3.10' is not one of"),
    ({"use_auth": "yes"}, "use_auth must be true or false, not 'yes'"),
    ({"use_docker": 1}, "use_docker must be true or false, not 1"),
    ({"use_prometheus": None}, "use_prometheus must be true or false, not None"),
    ({"use_kubernetes": "no"}, "use_kubernetes must be true or false, not 'no'"),
    (
        {"use_kubernetes": True, "use_docker": False},
        "use_kubernetes=true needs use_docker=true: the Helm chart runs the image",
    ),
]


def test_default_answers_are_accepted(pre: ModuleType, answers: dict[str, Any]) -> None:
    assert pre.validate(answers) == []


@pytest.mark.parametrize(
    ("change", "expected"), REFUSED, ids=[answer_id(change) for change, _ in REFUSED]
)
def test_a_bad_answer_is_refused_in_one_line(
    pre: ModuleType, answers: dict[str, Any], change: dict[str, Any], expected: str
) -> None:
    problems = pre.validate({**answers, **change})
    assert len(problems) == 1, problems
    assert expected in problems[0]
    assert "\n" not in problems[0]


@pytest.mark.parametrize(
    "change",
    [
        {"project_slug": "a", "package_name": "a"},
        {"project_slug": "prsm2-api", "package_name": "prsm2_api"},
        {"project_slug": "answers", "package_name": "answers_service"},
        {"project_name": "Caf\u00e9 M\u00fcller's \u00abService\u00bb {v2} & co"},
        {"description": "Answers questions; costs FTNS <per query> & logs it #1"},
        {"author_email": "first.last+prsm@mail.example.co.uk"},
        {"version": "2024.10"},
        {"version": "1!2.0rc1.post3.dev4+ubuntu.1"},
        {"version": "0.1.0a1"},
        {"use_auth": True, "use_docker": False},
        {"use_kubernetes": True, "use_docker": True},
    ],
    ids=answer_id,
)
def test_a_good_answer_is_accepted(
    pre: ModuleType, answers: dict[str, Any], change: dict[str, Any]
) -> None:
    assert pre.validate({**answers, **change}) == []


def test_every_problem_is_reported_at_once(pre: ModuleType, answers: dict[str, Any]) -> None:
    problems = pre.validate(
        {**answers, "package_name": "json", "author_email": "x", "version": "v2", "use_auth": 0}
    )
    assert len(problems) == 4


def test_toggles_are_the_booleans_of_cookiecutter_json(
    pre: ModuleType, template: Template, answers: dict[str, Any]
) -> None:
    assert pre.toggle_names(answers) == sorted(template.toggles)


def test_without_the_declared_choices_python_is_checked_by_shape(pre: ModuleType) -> None:
    assert pre.check_python_version("3.14", None) == []
    assert pre.check_python_version("three", None) != []


# --- pre_gen_project through cookiecutter -------------------------------------------------

REFUSED_BAKES = [
    ({"project_name": "Caf\u00e9"}, "project_slug 'caf\u00e9' contains the non-ASCII"),
    ({"project_slug": "My Service"}, "shell metacharacter ' '"),
    ({"project_slug": "../escape"}, "outside the output directory"),
    ({"project_slug": "nested/name"}, "is a path, not a name"),
    ({"project_slug": f"prsm-s{CYRILLIC_E}rvice"}, "CYRILLIC SMALL LETTER IE"),
    ({"project_slug": "svc;reboot"}, "shell metacharacter ';'"),
    ({"project_slug": "svc`id`"}, "shell metacharacter '`'"),
    ({"package_name": "class"}, "is a Python keyword"),
    ({"package_name": "json"}, "shadow the standard library"),
    ({"package_name": "fastapi"}, "shadow a dependency"),
    ({"package_name": "tests"}, "taken by the project's layout or tests"),
    ({"author_email": "nobody"}, "not an address"),
    ({"version": "v1"}, "not a canonical PEP 440 version"),
    ({"description": 'A "quoted"""" word'}, "contains a double quote"),
    ({"description": "Ends in a backslash\\"}, "contains a backslash"),
    ({"use_auth": 1}, "use_auth must be true or false"),
    ({"use_docker": None}, "use_docker must be true or false"),
    ({"use_kubernetes": True, "use_docker": False}, "use_kubernetes=true needs use_docker=true"),
]


@pytest.mark.parametrize(
    ("change", "expected"),
    REFUSED_BAKES,
    ids=[answer_id(change) for change, _ in REFUSED_BAKES],
)
def test_cookiecutter_refuses_a_bad_answer_and_writes_nothing(
    cookies: Any,
    template: Template,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    change: dict[str, Any],
    expected: str,
) -> None:
    result = cookies.bake(extra_context=change, template=str(template.root))

    assert isinstance(result.exception, FailedHookException)
    assert expected in capfd.readouterr().err
    # cookiecutter makes the project directory before the hook runs and removes it after;
    # for "nested/name" it leaves the empty parent "nested", but never a file.
    assert [path for path in tmp_path.rglob("*") if not path.is_dir()] == []


def test_cookiecutter_refuses_an_absolute_slug(
    cookies: Any, template: Template, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"

    result = cookies.bake(
        extra_context={"project_slug": str(elsewhere)}, template=str(template.root)
    )

    assert isinstance(result.exception, FailedHookException)
    assert not elsewhere.exists()


def test_quotes_and_braces_in_answers_reach_the_hooks_intact(
    cookies: Any, template: Template
) -> None:
    description = "It's {the} 'best' service; <fast> & #1 ''' \u00e9"
    result = cookies.bake(
        extra_context={
            "project_name": "Quote's Service",
            "project_slug": "quotes",
            "description": description,
        },
        template=str(template.root),
    )

    assert result.exception is None, result.exception
    assert result.project_path.name == "quotes"


# --- post_gen_project: pruning ------------------------------------------------------------


def _answers_with(template: Template, answers: dict[str, Any], **on: bool) -> dict[str, Any]:
    return {**answers, **dict.fromkeys(template.toggles, False), **on}


def test_all_on_removes_nothing(
    post: ModuleType, template: Template, answers: dict[str, Any]
) -> None:
    assert post.disabled_paths({**answers, **dict.fromkeys(template.toggles, True)}) == set()


def test_all_off_removes_every_listed_path(
    post: ModuleType, template: Template, answers: dict[str, Any]
) -> None:
    listed = {path for paths in post.MANIFEST.values() for path in paths}
    assert post.disabled_paths(_answers_with(template, answers)) == listed


@pytest.mark.parametrize("feature", ["use_redis_cache", "use_background_jobs"])
def test_a_shared_path_stays_while_one_owner_is_on(
    post: ModuleType, template: Template, answers: dict[str, Any], feature: str
) -> None:
    gone = post.disabled_paths(_answers_with(template, answers, **{feature: True}))
    assert "src/{package}/redis_client.py" not in gone
    assert set(post.MANIFEST[feature]).isdisjoint(gone)


def _lay_out_manifest(post: ModuleType, root: Path, answers: dict[str, Any]) -> None:
    """Every manifest path as a file, or as a directory where others are listed inside it."""
    listed = sorted({path for paths in post.MANIFEST.values() for path in paths})
    for path in listed:
        target = root / post.resolve(path, answers)
        if any(other.startswith(f"{path}/") for other in listed):
            target.mkdir(parents=True, exist_ok=True)
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("x\n")


def test_prune_deletes_files_and_directories_of_disabled_features(
    post: ModuleType, template: Template, answers: dict[str, Any], tmp_path: Path
) -> None:
    package = answers["package_name"]
    _lay_out_manifest(post, tmp_path, answers)
    nested = tmp_path / "src" / package / "jobs"
    nested.unlink()
    (nested / "deep").mkdir(parents=True)
    (nested / "deep" / "tasks.py").write_text("x\n")
    keep = tmp_path / "src" / package / "main.py"
    keep.write_text("x\n")

    removed = post.prune(tmp_path, _answers_with(template, answers, use_redis_cache=True))

    assert not nested.exists()
    assert (tmp_path / "src" / package / "redis_client.py").exists()
    assert (tmp_path / "src" / package / "cache").exists()
    assert keep.exists()
    assert len(removed) == len(
        post.disabled_paths(_answers_with(template, answers, use_redis_cache=True))
    )


def test_prune_removes_directories_it_leaves_empty(
    post: ModuleType, template: Template, answers: dict[str, Any], tmp_path: Path
) -> None:
    root = tmp_path / "project"
    _lay_out_manifest(post, root, answers)

    post.prune(root, _answers_with(template, answers))

    assert root.is_dir()
    assert list(root.iterdir()) == []


def test_prune_warns_about_a_listed_path_that_is_missing(
    post: ModuleType,
    template: Template,
    answers: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert post.prune(tmp_path, _answers_with(template, answers)) == []
    assert "in the manifest but not in the project" in capsys.readouterr().err


def test_next_steps_name_the_commands_to_run(post: ModuleType, answers: dict[str, Any]) -> None:
    steps = post.next_steps(answers)
    for command in (
        f"cd {answers['project_slug']}",
        "uv sync",
        f"uv run uvicorn --factory {answers['package_name']}.main:create_app --reload"
        " --log-config logging.yaml",
        "uv run pytest",
    ):
        assert f"\n  {command}\n" in f"{steps}\n"


# A command of each feature's own, in the "Next" message exactly when the feature is on.
FEATURE_STEPS = {
    "use_auth": "uv run alembic upgrade head",
    "use_background_jobs": "uv run taskiq worker",
    "use_docker": "docker compose up --build --wait",
    "use_kubernetes": "helm lint --strict deploy/helm/",
}


@pytest.mark.parametrize("feature", FEATURE_STEPS)
def test_next_steps_give_a_feature_its_commands(
    post: ModuleType, template: Template, answers: dict[str, Any], feature: str
) -> None:
    # use_kubernetes may not be a question of this template yet: then it is simply never on.
    off = {**_answers_with(template, answers), feature: False}
    on = {**off, feature: True}

    assert FEATURE_STEPS[feature] not in post.next_steps(off)
    assert FEATURE_STEPS[feature] in post.next_steps(on)


def test_next_steps_need_no_answer_the_template_does_not_ask(
    post: ModuleType, answers: dict[str, Any]
) -> None:
    without = {key: value for key, value in answers.items() if key != "use_docker"}

    assert "docker compose" not in post.next_steps(without)


def test_next_steps_say_when_redis_is_needed(
    post: ModuleType, template: Template, answers: dict[str, Any]
) -> None:
    for feature in ("use_redis_cache", "use_background_jobs"):
        assert "need Redis" in post.next_steps(_answers_with(template, answers, **{feature: True}))
    assert "Redis" not in post.next_steps(_answers_with(template, answers))


def test_every_next_step_names_a_toggle_of_the_template_or_the_coming_kubernetes_one(
    post: ModuleType, template: Template
) -> None:
    named = {toggle for toggles, _, _ in post.NEXT_STEPS for toggle in toggles.split("|") if toggle}

    assert named <= {*template.toggles, "use_kubernetes"}
