"""Refuse bad answers before cookiecutter writes any file of the project.

Every check is a pure function of the answers, so the template's tests import this module
and call them directly. Only `main` touches the outside world: it reads the answers that
cookiecutter renders into `_ANSWERS_JSON`, prints one line per problem on stderr and exits 1
when there is any.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Mapping
from typing import Any

# Cookiecutter renders this file with Jinja before running it. `tojson` escapes quotes,
# backslashes and newlines, and a raw string keeps those escapes for `json.loads`, so no
# answer can break out of the literal.
_ANSWERS_JSON = r"""{{ cookiecutter | tojson }}"""

# Import names of the generated project's dependencies and tools: a package with one of these
# names would shadow the real one.
DEPENDENCY_IMPORT_NAMES = frozenset(
    {
        "aiosqlite",
        "alembic",
        "annotated_types",
        "anyio",
        "argon2",
        "asyncpg",
        "cachetools",
        "email_validator",
        "execnet",
        "fastapi",
        "fastapi_offline",
        "h11",
        "httpcore",
        "httpx",
        "jwt",
        "multipart",
        "mypy",
        "prometheus_client",
        "prsm",
        "prsm_sdk",
        "pwdlib",
        "pydantic",
        "pydantic_core",
        "pydantic_settings",
        "pytest",
        "pytest_asyncio",
        "python_multipart",
        "redis",
        "ruff",
        "sqlalchemy",
        "starlette",
        "taskiq",
        "taskiq_redis",
        "typing_extensions",
        "uvicorn",
        "xdist",
    }
)

# Names the generated project's layout and test runner already use.
RESERVED_NAMES = frozenset({"conftest", "src", "test", "tests"})

# Distribution names: a project called like one of its own dependencies cannot be installed.
DEPENDENCY_DISTRIBUTIONS = frozenset(name.replace("_", "-") for name in DEPENDENCY_IMPORT_NAMES) | {
    "pyjwt",
    "pytest-xdist",
    "taskiq-redis",
    "uv",
}

SLUG_SHAPE = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE_SHAPE = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")
PYTHON_VERSION_SHAPE = re.compile(r"3\.[0-9]+")
MAX_NAME_LENGTH = 64

# PEP 440 in its canonical spelling: [N!]N(.N)*[{a|b|rc}N][.postN][.devN][+local]
_RELEASE = r"[0-9]+(?:\.[0-9]+)*"
_PRE = r"(?:a|b|rc)[0-9]+"
_LOCAL = r"[a-z0-9]+(?:\.[a-z0-9]+)*"
PEP440_VERSION = re.compile(
    rf"(?:[0-9]+!)?{_RELEASE}(?:{_PRE})?(?:\.post[0-9]+)?(?:\.dev[0-9]+)?(?:\+{_LOCAL})?"
)

# An address the generated pyproject, README and settings can carry without quoting.
EMAIL_SHAPE = re.compile(
    r"[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
)

SHELL_METACHARACTERS = frozenset("|&;<>()$`\\\"' \t\n*?[]#~=%!{}")

# Free text lands inside TOML and Python string literals; these would end them early.
TEXT_FORBIDDEN = {'"': "a double quote", "\\": "a backslash"}

# Toggle -> (toggle it needs, why). The template's tests skip the combinations this refuses.
REQUIRES: dict[str, tuple[str, str]] = {
    "use_kubernetes": ("use_docker", "the Helm chart runs the image that use_docker builds"),
}


def _describe(char: str) -> str:
    name = unicodedata.name(char, "unnamed character")
    return f"{char!r} (U+{ord(char):04X} {name})"


def _identifier_problem(field: str, value: str, separator: str) -> str | None:
    """Say what is wrong with a slug or package name, most specific cause first."""
    if not value:
        return f"{field} is empty"
    parts = re.split(r"[/\\]", value)
    if value.startswith(("/", "\\")) or ".." in parts:
        return f"{field} {value!r} would be written outside the output directory"
    if len(parts) > 1 or value == ".":
        return f"{field} {value!r} is a path, not a name"
    for char in value:
        if not char.isascii():
            return f"{field} {value!r} contains the non-ASCII character {_describe(char)}"
    for char in value:
        if char in SHELL_METACHARACTERS:
            return f"{field} {value!r} contains the shell metacharacter {char!r}"
    if len(value) > MAX_NAME_LENGTH:
        return f"{field} {value!r} is longer than {MAX_NAME_LENGTH} characters"
    shape = SLUG_SHAPE if separator == "-" else PACKAGE_SHAPE
    if not shape.fullmatch(value):
        return (
            f"{field} {value!r} must be lowercase letters and digits, starting with a letter,"
            f" words joined by single {separator!r}"
        )
    return None


def check_project_slug(slug: str) -> list[str]:
    problem = _identifier_problem("project_slug", slug, "-")
    if problem:
        return [problem]
    if slug in DEPENDENCY_DISTRIBUTIONS:
        return [f"project_slug {slug!r} is the name of a dependency of the generated project"]
    return []


def check_package_name(package: str) -> list[str]:
    problem = _identifier_problem("package_name", package, "_")
    if problem:
        return [problem]
    if keyword.iskeyword(package):
        return [f"package_name {package!r} is a Python keyword"]
    if package in RESERVED_NAMES:
        return [f"package_name {package!r} is taken by the project's layout or tests"]
    if package in sys.stdlib_module_names:
        return [f"package_name {package!r} would shadow the standard library module"]
    if package in DEPENDENCY_IMPORT_NAMES:
        return [f"package_name {package!r} would shadow a dependency of the generated project"]
    return []


def check_text(field: str, value: str) -> list[str]:
    if not value.strip():
        return [f"{field} is empty"]
    if value != value.strip():
        return [f"{field} {value!r} starts or ends with whitespace"]
    for char in value:
        if unicodedata.category(char).startswith("C"):
            return [f"{field} contains the control character {_describe(char)}"]
        if char in TEXT_FORBIDDEN:
            return [f"{field} {value!r} contains {TEXT_FORBIDDEN[char]}"]
    return []


def check_email(email: str) -> list[str]:
    if not EMAIL_SHAPE.fullmatch(email):
        return [f"author_email {email!r} is not an address like name@example.com"]
    return []


def check_version(version: str) -> list[str]:
    if not PEP440_VERSION.fullmatch(version):
        return [f"version {version!r} is not a canonical PEP 440 version (like 0.1.0, 1.2.0rc1)"]
    return []


def check_python_version(version: str, choices: object) -> list[str]:
    if isinstance(choices, list) and choices:
        if version not in choices:
            return [f"python_version {version!r} is not one of {', '.join(choices)}"]
    elif not PYTHON_VERSION_SHAPE.fullmatch(version):
        return [f"python_version {version!r} is not a version like 3.13"]
    return []


def toggle_names(context: Mapping[str, Any]) -> list[str]:
    """Answers that must be booleans: `use_*`, and any whose cookiecutter.json default is one."""
    declared = context.get("_cookiecutter")
    from_json = (
        [key for key, value in declared.items() if isinstance(value, bool) and key[:1] != "_"]
        if isinstance(declared, Mapping)
        else []
    )
    by_name = [key for key in context if key.startswith("use_")]
    return sorted(set(from_json) | set(by_name))


def check_toggles(context: Mapping[str, Any]) -> list[str]:
    return [
        f"{name} must be true or false, not {context.get(name)!r}"
        for name in toggle_names(context)
        if not isinstance(context.get(name), bool)
    ]


def check_requirements(context: Mapping[str, Any]) -> list[str]:
    """A toggle that is on while one it needs is off; booleans only (check_toggles says the
    rest)."""
    return [
        f"{toggle}=true needs {needed}=true: {why}"
        for toggle, (needed, why) in REQUIRES.items()
        if context.get(toggle) is True and context.get(needed) is False
    ]


def validate(context: Mapping[str, Any]) -> list[str]:
    """Every problem with the answers, one line each; empty when they are fine."""

    def text(key: str) -> str:
        value = context.get(key, "")
        return value if isinstance(value, str) else repr(value)

    declared = context.get("_cookiecutter")
    choices = declared.get("python_version") if isinstance(declared, Mapping) else None
    return [
        *check_text("project_name", text("project_name")),
        *check_project_slug(text("project_slug")),
        *check_package_name(text("package_name")),
        *check_text("description", text("description")),
        *check_text("author_name", text("author_name")),
        *check_email(text("author_email")),
        *check_version(text("version")),
        *check_python_version(text("python_version"), choices),
        *check_toggles(context),
        *check_requirements(context),
    ]


def main() -> int:
    problems = validate(json.loads(_ANSWERS_JSON))
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
