"""What the template's tests share: the template's answers, feature combinations, and a
`BakedProject` that knows how to inspect, install and check one rendered project."""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from types import ModuleType
from typing import Any

import pytest
import yaml
from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from jinja2 import Environment, FileSystemLoader

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
PROJECT_DIR_NAME = "{{cookiecutter.project_slug}}"
PACKAGE_DIR_NAME = "{{cookiecutter.package_name}}"

# Third-party distributions each feature brings. One listed under several features may stay
# while any of them is on; once all are off it must be gone from the project's dependencies.
FEATURE_DEPENDENCIES: dict[str, tuple[str, ...]] = {
    "use_auth": ("alembic", "cachetools", "pwdlib", "pyjwt", "sqlalchemy"),
    "use_redis_cache": ("redis",),
    "use_background_jobs": ("redis", "taskiq", "taskiq-redis"),
    "use_prometheus": ("prometheus-client",),
}

# Words that name a feature's compose service or image; none may remain when it is off.
FEATURE_COMPOSE_MARKERS: dict[str, tuple[str, ...]] = {
    "use_auth": ("postgres",),
    "use_redis_cache": ("redis",),
    "use_background_jobs": ("redis", "taskiq", "worker"),
}

# A rendered project's own test suite, as the template's tests run it. The project spreads its
# tests over every core (pytest-xdist, `-n auto` in its pyproject.toml); here two projects'
# suites already run side by side, one per template test worker, so each stays in one process.
PROJECT_TESTS: tuple[str, ...] = ("pytest", "-n", "0")

UNRENDERED_JINJA = re.compile(r"\{\{-?\s*cookiecutter\b|\{%|%\}|(?<!\$)\{#")


# --- the template -------------------------------------------------------------------------


class Template:
    """The template under test: its directory and what its cookiecutter.json declares."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.declared: dict[str, Any] = json.loads((root / "cookiecutter.json").read_text())

    @functools.cached_property
    def toggles(self) -> list[str]:
        """Boolean questions, in cookiecutter.json order (private `_` keys are no questions)."""
        return [
            key
            for key, value in self.declared.items()
            if isinstance(value, bool) and not key.startswith("_")
        ]

    @property
    def python_versions(self) -> list[str]:
        choices = self.declared["python_version"]
        assert isinstance(choices, list)
        return choices

    @property
    def default_python(self) -> str:
        return self.python_versions[0]

    def default_toggles(self) -> dict[str, bool]:
        return {key: self.declared[key] for key in self.toggles}

    def answers(self, **overrides: Any) -> dict[str, Any]:
        """The context cookiecutter hands the hooks for these answers over the defaults."""
        context = generate_context(
            context_file=str(self.root / "cookiecutter.json"), extra_context=overrides
        )
        return {**prompt_for_config(context, no_input=True), "_cookiecutter": self.declared}

    def render_file(self, relative: str, answers: Mapping[str, Any]) -> str:
        """One file of the project as cookiecutter renders it for these answers: its Jinja
        environment and context, nothing written."""
        return self.render_files([relative], answers)[relative]

    def render_files(self, relatives: Sequence[str], answers: Mapping[str, Any]) -> dict[str, str]:
        """`render_file` for several files of one project."""
        context = {"cookiecutter": self.answers(**answers)}
        return {r: self.jinja.get_template(r).render(**context) for r in relatives}

    @functools.cached_property
    def jinja(self) -> Environment:
        """cookiecutter's Jinja environment for this template: its options and extensions
        come from cookiecutter.json, the same whatever the answers, so it (and the templates
        it has compiled) serves every render."""
        env = create_env_with_context({"cookiecutter": self.answers()})
        env.loader = FileSystemLoader(str(self.root / PROJECT_DIR_NAME))
        return env

    def hook(self, name: str) -> ModuleType:
        return load_module(self.root / "hooks" / f"{name}.py")

    @functools.cached_property
    def requirements(self) -> dict[str, tuple[str, str]]:
        """Toggle -> (the toggle it needs, why), as the pre-generation hook enforces it."""
        required: dict[str, tuple[str, str]] = self.hook("pre_gen_project").REQUIRES
        return required

    def is_valid(self, toggles: Mapping[str, bool]) -> bool:
        """Whether the pre-generation hook accepts this on/off mix."""
        return not any(
            toggles[toggle] and not toggles[needed]
            for toggle, (needed, _) in self.requirements.items()
        )

    def project_path(self, manifest_path: str) -> Path:
        """Where a manifest path lives in the unrendered template tree."""
        relative = manifest_path.replace("{package}", PACKAGE_DIR_NAME)
        # The chart's directory is named like the project's: `{{cookiecutter.project_slug}}`.
        return self.root / PROJECT_DIR_NAME / relative.replace("{slug}", PROJECT_DIR_NAME)


def write_cookiecutter_config(directory: Path) -> Path:
    """A cookiecutter user config of our own: no user defaults, and the replay files and
    cloned templates kept in `directory`, out of $HOME."""
    config = directory / "cookiecutter-config.yaml"
    config.write_text(
        f"cookiecutters_dir: {json.dumps(str(directory / 'cookiecutters'))}\n"
        f"replay_dir: {json.dumps(str(directory / 'replay'))}\n",
        encoding="utf-8",
    )
    return config


def load_module(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"_template_{path.stem}", path)
    assert spec is not None, path
    assert spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def short_name(toggle: str) -> str:
    """`use_background_jobs` -> `jobs`: the word a combination id uses for a feature."""
    return toggle.split("_")[-1]


@dataclass(frozen=True)
class Combination:
    toggles: tuple[tuple[str, bool], ...]
    python_version: str
    default_python: str

    @property
    def id(self) -> str:
        on = [short_name(name) for name, value in self.toggles if value]
        name = "+".join(on) or "none"
        if self.python_version != self.default_python:
            name += f"@py{self.python_version}"
        return name

    @property
    def answers(self) -> dict[str, Any]:
        return {**dict(self.toggles), "python_version": self.python_version}


def combinations(template: Template, mode: str) -> list[Combination]:
    """`quick`: everything on, the defaults, everything off. `full`: every on/off mix that the
    pre-generation hook accepts on the default Python, plus everything on for each other Python
    the template offers.

    Everything on comes first: it is the slowest, and once its environment is built the
    others can resolve from uv's cache (see `BakedProject.install`)."""

    def make(values: Sequence[bool], python: str | None = None) -> Combination:
        return Combination(
            toggles=tuple(zip(template.toggles, values, strict=True)),
            python_version=python or template.default_python,
            default_python=template.default_python,
        )

    all_on = make([True] * len(template.toggles))
    all_off = make([False] * len(template.toggles))
    if mode == "quick":
        picked = [all_on, make(list(template.default_toggles().values())), all_off]
    elif mode == "full":
        # Most features first: the slow combinations start early and the workers finish
        # together.
        mixes = sorted(
            (
                values
                for values in itertools.product([True, False], repeat=len(template.toggles))
                if template.is_valid(dict(zip(template.toggles, values, strict=True)))
            ),
            key=lambda values: -sum(values),
        )
        extra = [make([True] * len(template.toggles), v) for v in template.python_versions[1:]]
        picked = [all_on, *extra, *(make(values) for values in mixes)]
    else:
        raise ValueError(f"unknown matrix mode {mode!r}")
    return list({c.id: c for c in picked}.values())


def render_replaying_lock(
    template: Template,
    answers: Mapping[str, Any],
    render: Callable[[], Path],
    locks: OnlineLocks,
    label: str,
) -> tuple[Path, tuple[str, str] | None]:
    """`render()` the project for these answers (cookiecutter, whose hooks see os.environ);
    its path, and (combination, key) of the online lock its uv.lock replayed, if it did.

    When this run has locked the same pyproject.toml online (its text is rendered first,
    nothing written), the project is rendered with UV_OFFLINE=1; the render counts only if
    its pyproject.toml is that one and, for a Docker project (whose lock the hook writes), its
    uv.lock is byte-identical to the online one. Otherwise `render()` runs again, online,
    and a lock it leaves is recorded for the projects after it (see `OnlineLocks`)."""
    key = OnlineLocks.key(template.render_file("pyproject.toml", answers).encode())
    known = locks.find(key)
    if known is not None:
        with environment(UV_OFFLINE="1"):
            path = render()
        lock = path / "uv.lock"
        same_pyproject = OnlineLocks.key((path / "pyproject.toml").read_bytes()) == key
        if same_pyproject and lock.exists() and lock.read_bytes() == known[1]:
            return path, (known[0], key)
        if same_pyproject and not lock.exists() and not template.answers(**answers)["use_docker"]:
            return path, None
    path = render()
    lock = path / "uv.lock"
    rendered_key = OnlineLocks.key((path / "pyproject.toml").read_bytes())
    if lock.exists() and locks.find(rendered_key) is None:
        locks.record(rendered_key, label, lock.read_bytes())
    return path, None


@contextmanager
def environment(**variables: str | None) -> Iterator[None]:
    """os.environ with these variables set (None: unset) for the block, as the hooks, which
    cookiecutter starts as processes of their own, read it."""
    saved = {name: os.environ.get(name) for name in variables}
    try:
        for name, value in variables.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


# --- interpreters and tools ---------------------------------------------------------------


@functools.cache
def find_uv() -> str:
    candidates = [
        os.environ.get("UV"),
        str(Path(sys.executable).with_name("uv")),
        shutil.which("uv"),
    ]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    pytest.fail("uv is not installed: it builds each rendered project's environment")


@functools.cache
def find_python(version: str) -> str:
    """The interpreter for `version`: pyenv's newest X.Y.Z if pyenv has it, else let uv look."""
    pyenv = shutil.which("pyenv")
    if pyenv:
        root = subprocess.run(
            [pyenv, "root"], capture_output=True, text=True, check=False
        ).stdout.strip()
        versions = Path(root, "versions")
        pattern = re.compile(rf"{re.escape(version)}\.(\d+)")
        found = [
            (int(match.group(1)), path)
            for path in (versions.iterdir() if versions.is_dir() else [])
            if (match := pattern.fullmatch(path.name))
        ]
        if found:
            interpreter = max(found)[1] / "bin" / f"python{version}"
            if interpreter.is_file():
                return str(interpreter)
    return version


# --- one rendered project -----------------------------------------------------------------


class StepFailed(Exception):
    """A command of a rendered project failed; the message carries its output's tail."""


class OnlineLocks:
    """The uv.lock each pyproject.toml got when it was resolved online in this run, in a
    directory the xdist workers share (gone with the run, as step_reuse.py's results are).

    Resolving online (the post-generation hook's `uv lock`, or `uv sync` in a project
    without a lock) revalidates every index page with the registry, most of a render's or an
    environment's time. uv's cache holds those pages once a pyproject.toml has been resolved
    online; resolving a byte-identical pyproject.toml again offline replays the same
    decisions from them. So a project whose pyproject.toml was locked online earlier in the
    run resolves offline (`UV_OFFLINE=1`, which the hook's uv reads too, or `--offline`),
    and its lock must then be byte-identical to the online one: otherwise it resolves again,
    online. What the project gets is what resolving it online minutes earlier gave.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def key(pyproject: bytes) -> str:
        return hashlib.sha256(pyproject).hexdigest()

    def find(self, key: str) -> tuple[str, bytes] | None:
        """(the combination that locked it online, its lock), or None."""
        lock, source = self.directory / f"{key}.lock", self.directory / f"{key}.source"
        if not (lock.exists() and source.exists()):
            return None
        return source.read_text(encoding="utf-8"), lock.read_bytes()

    def record(self, key: str, combination: str, lock: bytes) -> None:
        for suffix, data in ((".lock", lock), (".source", combination.encode())):
            partial = self.directory / f"{key}{suffix}.partial"
            partial.write_bytes(data)
            partial.replace(self.directory / f"{key}{suffix}")


@dataclass
class Timings:
    """Seconds per step of one combination; the controller turns these into a table."""

    steps: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)
    # Step -> "combination #hash" of the result it took instead of running (step_reuse.py).
    reuses: dict[str, str] = field(default_factory=dict)

    def reused(self, step: str, combination: str, key: str) -> None:
        self.reuses[step] = f"{combination} #{key[:12]}"

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            end = time.perf_counter()
            self.steps[name] = round(self.steps.get(name, 0.0) + end - begin, 2)
            self.steps["total"] = round(end - self.started, 2)


@dataclass
class BakedProject:
    path: Path
    answers: Mapping[str, Any]
    env: Mapping[str, str]
    # Online locks of this run, and what the project was rendered as (a combination id).
    locks: OnlineLocks | None = None
    label: str = ""
    # (combination, key) of the online lock this project's lock replayed, if it did.
    replayed_lock: tuple[str, str] | None = None

    @property
    def package(self) -> str:
        return str(self.answers["package_name"])

    def has_file(self, relative: str | PurePosixPath) -> bool:
        return (self.path / relative).exists()

    def read(self, relative: str | PurePosixPath) -> str:
        return (self.path / relative).read_text(encoding="utf-8")

    def file_contains(self, relative: str | PurePosixPath, text: str) -> bool:
        return self.has_file(relative) and text in self.read(relative)

    def resolve_all(self, manifest_paths: set[str]) -> list[PurePosixPath]:
        """Manifest paths with `{package}` and `{slug}` filled in, sorted."""
        slug = str(self.answers["project_slug"])
        return sorted(
            PurePosixPath(p.replace("{package}", self.package).replace("{slug}", slug))
            for p in manifest_paths
        )

    def pyproject(self) -> dict[str, Any]:
        return tomllib.loads(self.read("pyproject.toml"))

    def text_files(self) -> Iterator[tuple[PurePosixPath, str]]:
        """Every UTF-8 text file of the project (before any environment is built in it)."""
        for path in sorted(self.path.rglob("*")):
            if not path.is_file() or ".venv" in path.relative_to(self.path).parts:
                continue
            data = path.read_bytes()
            if b"\0" in data:
                continue
            try:
                text = data.decode("utf-8")
            except UnicodeDecodeError:
                continue
            yield PurePosixPath(path.relative_to(self.path).as_posix()), text

    # Running commands in the project's own environment.

    def run(
        self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args,
            cwd=self.path,
            env=dict(env or self.env),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def check(self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None) -> None:
        """Run a command; any exit code but 0 fails (pytest's 5, "no tests ran", too)."""
        try:
            result = self.run(*args, timeout=timeout, env=env)
        except subprocess.TimeoutExpired as error:
            raise StepFailed(f"`{' '.join(args)}` still running after {timeout:.0f} s") from error
        if result.returncode != 0:
            output = (result.stdout + result.stderr).strip().splitlines()
            tail = "\n".join(output[-60:])
            no_tests = "pytest" in args and result.returncode == pytest.ExitCode.NO_TESTS_COLLECTED
            why = " (pytest ran no tests)" if no_tests else ""
            raise StepFailed(f"`{' '.join(args)}` exited {result.returncode}{why}\n{tail}")

    def lock_key(self) -> str:
        return OnlineLocks.key((self.path / "pyproject.toml").read_bytes())

    def install(self) -> None:
        """`uv sync`: a new .venv with the runtime and dev dependencies of this project alone.

        A project with a lock that still matches its pyproject.toml (the hook's) needs only
        wheels, which uv's cache has once any project of the run installed them: offline
        (`--locked`: nothing resolved) first, online if the cache lacks one or the lock is
        out of date. A project without one resolves its pyproject.toml: offline when this
        run has locked the same one online, with a byte-identical lock as the result (see
        `OnlineLocks`), else online.
        """
        python_version = str(self.answers["python_version"])
        sync = (find_uv(), "sync", "--python", find_python(python_version))
        lock = self.path / "uv.lock"
        had_lock = lock.exists()
        key = self.lock_key()
        known = self.locks.find(key) if self.locks else None
        if had_lock:
            try:
                self.check(*sync, "--offline", "--locked", timeout=900)
            except StepFailed:
                pass  # a wheel that uv's cache lacks, or a lock out of date
            else:
                return
        elif known:
            try:
                self.check(*sync, "--offline", timeout=900)
            except StepFailed:
                pass  # an index page or a wheel that uv's cache lacks
            else:
                if lock.read_bytes() == known[1]:
                    self.replayed_lock = (known[0], key)
                    return
            lock.unlink(missing_ok=True)  # resolved online below, whatever offline gave
        self.check(*sync, timeout=900)
        if self.locks and not had_lock and known is None:
            self.locks.record(key, self.label, lock.read_bytes())

    def uv_run(
        self, *args: str, timeout: float = 600, env: Mapping[str, str] | None = None
    ) -> None:
        env = env or self.env
        self.check(find_uv(), "run", "--no-sync", *args, timeout=timeout, env=env)


# --- what a clean render looks like -------------------------------------------------------


def leftover_problems(project: BakedProject) -> list[str]:
    """Template debris: unrendered Jinja, stray whitespace, runs of blank lines, files that
    do not parse, directories that pruning left empty. Run it before building the .venv."""
    problems = []
    for relative, text in project.text_files():
        lines = text.split("\n")
        # PEP 8 spaces top-level Python definitions (alembic's .py.mako too) by two blank lines.
        blank_run_limit = 3 if ".py" in relative.suffixes else 2
        run = 0
        for number, line in enumerate(lines, start=1):
            where = f"{relative}:{number}"
            if UNRENDERED_JINJA.search(line):
                problems.append(f"{where}: unrendered Jinja: {line.strip()}")
            if line != line.rstrip():
                kind = "whitespace-only line" if line.strip() == "" else "trailing whitespace"
                problems.append(f"{where}: {kind}")
            run = run + 1 if line.strip() == "" and number < len(lines) else 0
            if run == blank_run_limit:
                problems.append(f"{where}: {blank_run_limit} blank lines in a row")
        if text and not text.endswith("\n"):
            problems.append(f"{relative}: no newline at the end")
        if text.startswith("\n"):
            problems.append(f"{relative}: starts with a blank line")
        if text.endswith("\n\n"):
            problems.append(f"{relative}: ends with blank lines")
        problems.extend(f"{relative}: {error}" for error in syntax_errors(relative, text))
    problems += [
        f"{path.relative_to(project.path).as_posix()}: empty directory"
        for path in sorted(project.path.rglob("*"))
        if path.is_dir() and not any(path.iterdir())
    ]
    return problems


def is_helm_template(relative: PurePosixPath) -> bool:
    """A file of the Helm chart's templates/: Go templates, which `helm lint` checks."""
    parts = relative.parts
    return len(parts) > 4 and parts[:2] == ("deploy", "helm") and parts[3] == "templates"


def syntax_errors(relative: PurePosixPath, text: str) -> list[str]:
    if is_helm_template(relative):
        return []
    try:
        if relative.suffix in {".yaml", ".yml"}:
            list(yaml.safe_load_all(text))
        elif relative.suffix == ".toml":
            tomllib.loads(text)
        elif relative.suffix == ".json":
            json.loads(text)
        elif relative.suffix == ".py":
            ast.parse(text)
    except (yaml.YAMLError, tomllib.TOMLDecodeError, ValueError, SyntaxError) as error:
        return [f"does not parse: {str(error).splitlines()[0]}"]
    return []


def feature_problems(project: BakedProject, manifest: Mapping[str, Sequence[str]]) -> list[str]:
    """Enabled features' files are there; disabled ones left no file, import or dependency."""
    kept, gone = _claimed(manifest, project.answers)
    problems = [
        f"{path}: missing although its feature is on"
        for path in project.resolve_all(kept)
        if not project.has_file(path)
    ]
    problems += [
        f"{path}: present although its feature is off"
        for path in project.resolve_all(gone)
        if project.has_file(path)
    ]
    source_root = PurePosixPath("src", project.package)
    gone_modules = {
        ".".join([project.package, *path.relative_to(source_root).with_suffix("").parts])
        for path in project.resolve_all(gone)
        if path.is_relative_to(source_root)
    }
    problems += disabled_module_references(project, gone_modules)
    problems += disabled_dependencies(project)
    problems += disabled_compose_services(project)
    return problems


def _claimed(
    table: Mapping[str, Sequence[str]], answers: Mapping[str, Any]
) -> tuple[set[str], set[str]]:
    """(kept, gone): entries some enabled feature claims, and those no enabled feature does.
    A key joining toggles with "+" claims its entries only while all of them are on."""
    kept = {
        item
        for key, items in table.items()
        if all(answers[toggle] for toggle in key.split("+"))
        for item in items
    }
    listed = {item for items in table.values() for item in items}
    return kept, listed - kept


def disabled_dependencies(project: BakedProject) -> list[str]:
    _, gone = _claimed(FEATURE_DEPENDENCIES, project.answers)
    declared = {
        _distribution(requirement)
        for requirement in project.pyproject()["project"].get("dependencies", [])
    }
    return [
        f"pyproject.toml: depends on {name} although its feature is off"
        for name in sorted(declared & gone)
    ]


def disabled_compose_services(project: BakedProject) -> list[str]:
    if not project.has_file("compose.yaml"):
        return []
    _, gone = _claimed(FEATURE_COMPOSE_MARKERS, project.answers)
    services = (yaml.safe_load(project.read("compose.yaml")) or {}).get("services") or {}
    problems = []
    for name, service in services.items():
        image = service.get("image", "") if isinstance(service, dict) else ""
        label = f"{name} {image}".lower()
        problems += [
            f"compose.yaml: service {name!r} looks like {marker}, whose feature is off"
            for marker in sorted(gone)
            if marker in label
        ]
    return problems


def _distribution(requirement: str) -> str:
    name = re.match(r"[A-Za-z0-9._-]+", requirement)
    assert name, requirement
    return re.sub(r"[-_.]+", "-", name.group()).lower()


def disabled_module_references(project: BakedProject, modules: set[str]) -> list[str]:
    """Imports of a removed module (Python, absolute or relative) and dotted references to it
    anywhere (`pkg.worker:broker` in a compose command counts)."""
    if not modules:
        return []
    dotted = re.compile(r"\b(?:" + "|".join(re.escape(m) for m in sorted(modules)) + r")\b")
    found: dict[tuple[PurePosixPath, int], str] = {}
    for relative, text in project.text_files():
        for number, line in enumerate(text.splitlines(), start=1):
            if match := dotted.search(line):
                found[relative, number] = match.group()
        if relative.suffix == ".py":
            for number, module in _imports_of(relative, text, modules):
                found.setdefault((relative, number), module)
    return [
        f"{path}:{number}: refers to disabled {module}" for (path, number), module in found.items()
    ]


def _imports_of(relative: PurePosixPath, text: str, modules: set[str]) -> Iterator[tuple[int, str]]:
    """Lines importing one of `modules`, with relative imports resolved against the file."""
    try:
        tree = ast.parse(text)
    except SyntaxError:
        return  # reported by syntax_errors
    parts = list(relative.with_suffix("").parts)
    package = parts[1:-1] if parts[0] == "src" else parts[:-1]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            target = ".".join([*base, *(node.module or "").split(".")]).strip(".")
            candidates = [target, *(f"{target}.{alias.name}" for alias in node.names)]
        else:
            continue
        for module in modules:
            if any(c == module or c.startswith(f"{module}.") for c in candidates):
                yield node.lineno, module
