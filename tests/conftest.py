"""Fixtures for baking the template, the matrix and fuzz options, the timing table, the
fuzz case table and the Docker images table."""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from cookiecutter.main import cookiecutter

from baking import (
    TEMPLATE_ROOT,
    BakedProject,
    Combination,
    OnlineLocks,
    Template,
    Timings,
    combinations,
    render_replaying_lock,
    write_cookiecutter_config,
)
from docker_engine import SETUP_STATUS_VARIABLE, ImageReport, image_shapes
from step_reuse import REPLAYED_LOCK, StepResults, describe_reuses, reused_steps

# `--shard=I/N`, which CI uses to split the full matrix, is a plugin of its own: sharding.py.
pytest_plugins = ["sharding"]

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

# Variables that would point a rendered project's tools at something other than its own
# pyproject and .venv, or at the template tests' own pytest run.
_FOREIGN_ENV_PREFIXES = ("PYTEST_", "COV_CORE_")
_FOREIGN_ENV = {
    "DATABASE_URL",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONHOME",
    "PYTHONPATH",
    "UV_FROZEN",
    "UV_LOCKED",
    "UV_NO_SYNC",
    "UV_PROJECT",
    "UV_PROJECT_ENVIRONMENT",
    "VIRTUAL_ENV",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("template", "template matrix")
    group.addoption(
        "--matrix",
        choices=["quick", "full"],
        default=os.environ.get("TEMPLATE_MATRIX", "quick"),
        help="quick (default): the cookiecutter.json defaults, all on, all off; "
        "full: every on/off mix plus all-on on every offered Python, whose image the "
        "Docker image tests then build too (env TEMPLATE_MATRIX sets the default)",
    )
    group.addoption(
        "--fuzz",
        choices=["ci", "all"],
        default=os.environ.get("TEMPLATE_FUZZ", "ci"),
        help="combinations test_fuzz.py fuzzes; ci (default): all off, all on, and each "
        "feature of the service alone; all: every on/off mix (env TEMPLATE_FUZZ sets the default)",
    )
    group.addoption(
        "--docker-no-cache",
        action="store_true",
        help="build each image of the Docker image tests from scratch first (cold build "
        "times); otherwise the engine's BuildKit cache is reused",
    )
    group.addoption(
        "--keep-locks",
        default=None,
        metavar="DIR",
        help="copy each matrix combination's pyproject.toml and uv.lock, as its environment "
        "step left them, to DIR/<combination>/ (tests/dependency_audit.py --locks DIR audits "
        "those instead of locking every combination again)",
    )
    group.addoption(
        "--timings-json",
        default=None,
        help="where to write the per-combination timings as JSON "
        "(default: .results/matrix-timings.json under the rootdir)",
    )


def template_under_test(config: pytest.Config) -> Template:
    """The repository's template, or the one named by pytest-cookies' --template."""
    explicit = any(
        arg == "--template" or arg.startswith("--template=")
        for arg in config.invocation_params.args
    )
    return Template(Path(config.option.template) if explicit else TEMPLATE_ROOT)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    template = template_under_test(metafunc.config)
    if "combination" in metafunc.fixturenames:
        picked = combinations(template, metafunc.config.option.matrix)
        metafunc.parametrize("combination", picked, ids=[c.id for c in picked])
    if "fuzz_combination" in metafunc.fixturenames:
        picked = fuzz_combinations(template, metafunc.config.option.fuzz)
        metafunc.parametrize("fuzz_combination", picked, ids=[fuzz_id(c) for c in picked])
    if "image_shape" in metafunc.fixturenames:
        shapes = image_shapes(template, metafunc.config.option.matrix)
        metafunc.parametrize("image_shape", shapes, ids=[shape.id for shape in shapes])
    if "python_version" in metafunc.fixturenames:
        metafunc.parametrize("python_version", template.python_versions)
    if "manifest_path" in metafunc.fixturenames:
        manifest = template.hook("post_gen_project").MANIFEST
        metafunc.parametrize("manifest_path", sorted({p for ps in manifest.values() for p in ps}))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """While .ci/run sets a Docker engine up in the background, the tests that need it (the
    image tests and the chart's containers) go last, so that the others run meanwhile instead
    of waiting for it."""
    if os.environ.get(SETUP_STATUS_VARIABLE):
        items.sort(key=needs_engine)


def needs_engine(item: pytest.Item) -> bool:
    fixtures = getattr(item, "fixturenames", ())
    return item.path.name == "test_docker_images.py" or "engine" in fixtures


def fuzz_combinations(template: Template, mode: str) -> list[Combination]:
    """`ci`: everything on, each feature of the service alone, everything off. `all`: every
    on/off mix. Both on the default Python, most features first, as the full matrix orders
    them. `ci` leaves out Docker alone: it adds the image and compose files, none of what the
    fuzzed service runs (the matrix's Docker twins share every step), so it would only fuzz
    the all-off service again."""
    mixes = [c for c in combinations(template, "full") if c.python_version == c.default_python]
    if mode == "all":
        return mixes
    if mode == "ci":
        everything = len(template.toggles)
        return [
            c
            for c in mixes
            if sum(on for _, on in c.toggles) in {0, 1, everything}
            and [name for name, on in c.toggles if on] != ["use_docker"]
        ]
    raise ValueError(f"unknown fuzz mode {mode!r}")


def fuzz_id(combination: Combination) -> str:
    """The matrix's id (`none`, `auth`, `auth+cache`...), but `all` for everything on."""
    return "all" if all(on for _, on in combination.toggles) else combination.id


@pytest.fixture(scope="session")
def template(pytestconfig: pytest.Config) -> Template:
    return template_under_test(pytestconfig)


def _worker_number() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw")) if worker.startswith("gw") else 0


def _redis_url_for_worker(base: str, worker: int) -> str:
    """Concurrent rendered projects each get their own Redis database number."""
    parts = urlsplit(base)
    database = int(parts.path.strip("/") or 0) + worker
    return urlunsplit(parts._replace(path=f"/{database}"))


@pytest.fixture(scope="session")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This process's scratch space (pytest-xdist gives each worker its own)."""
    return tmp_path_factory.getbasetemp()


@pytest.fixture(scope="session")
def project_env(workdir: Path) -> dict[str, str]:
    """The environment every rendered project's commands run in.

    Bytecode goes to one cache per worker. Every project on a worker is rendered at the same
    path and uv hardlinks each package file from its cache, so a module keeps its path, size
    and mtime from one combination to the next and its bytecode stays valid; the project's
    own files are written anew each time, so theirs is recompiled.

    The mypy cache is one per worker, so it is warm from its worker's first project on. It
    cannot be one for all: mypy records each module's path as it was given (`src/...`, the
    same in every project) and trusts a cached module whose file has the same size and
    mtime second, without hashing it. Two workers rendering two combinations in the same
    second, whose api.py have the same size (517 bytes with auth and no jobs, or with jobs
    and no auth), would each pass the other's verdict. A worker renders one project at a
    time, so no two of its projects share an mtime second.
    """
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in _FOREIGN_ENV and not key.startswith(_FOREIGN_ENV_PREFIXES)
    }
    env.update(
        MYPY_CACHE_DIR=str(workdir / "mypy-cache"),
        PYTHONPYCACHEPREFIX=str(workdir / "pycache"),
        REDIS_URL=_redis_url_for_worker(
            os.environ.get("REDIS_URL", DEFAULT_REDIS_URL), _worker_number()
        ),
        UV_NO_PROGRESS="1",
        UV_PYTHON_DOWNLOADS="never",
    )
    return env


@pytest.fixture(scope="session")
def cookiecutter_config(workdir: Path) -> Path:
    """A cookiecutter config of our own: no user defaults, replays kept out of $HOME."""
    return write_cookiecutter_config(workdir)


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory of this run that every xdist worker sees (the parent of each one's own),
    gone with the run."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def online_locks(shared_dir: Path) -> OnlineLocks:
    return OnlineLocks(shared_dir / "online-locks")


@pytest.fixture
def bake(
    template: Template,
    project_env: dict[str, str],
    cookiecutter_config: Path,
    workdir: Path,
    online_locks: OnlineLocks,
    request: pytest.FixtureRequest,
) -> Callable[..., BakedProject]:
    """`bake(use_auth=True, ...)`: render the template with these answers over the defaults.

    Each bake replaces the previous one in this worker's `bake/` directory, so a project's
    environment is always new but its path is the same (see `project_env`). The previous
    project is moved aside and deleted in the background, while this one is checked.

    A project whose pyproject.toml this run has already locked online is rendered with
    `UV_OFFLINE=1`, so the post-generation hook's `uv lock` resolves from uv's cache; the
    lock it writes must be byte-identical to the online one, or the project is rendered
    again, online (see `OnlineLocks`).
    """
    output = workdir / "bake"
    label = (
        request.getfixturevalue("combination").id
        if "combination" in request.fixturenames
        else request.node.name
    )

    def render(answers: dict[str, Any]) -> Path:
        if output.exists():
            previous = output.rename(workdir / f"discarded-{uuid.uuid4().hex}")
            threading.Thread(target=shutil.rmtree, args=(previous, True), daemon=True).start()
        output.mkdir()
        try:
            return Path(
                cookiecutter(
                    str(template.root),
                    no_input=True,
                    extra_context=answers,
                    output_dir=str(output),
                    config_file=str(cookiecutter_config),
                )
            )
        except Exception as error:
            pytest.fail(f"rendering {answers} failed: {error!r}", pytrace=False)

    def bake_with(**answers: Any) -> BakedProject:
        path, replayed = render_replaying_lock(
            template, answers, partial(render, answers), online_locks, label
        )
        project = BakedProject(
            path, template.answers(**answers), project_env, locks=online_locks, label=label
        )
        project.replayed_lock = replayed
        return project

    return bake_with


@pytest.fixture
def timings(request: pytest.FixtureRequest) -> Timings:
    """Step timings of this combination, carried to the controller in the test report."""
    combination = request.getfixturevalue("combination")
    recorded = Timings()
    request.node.user_properties.append(("matrix_combination", combination.id))
    request.node.user_properties.append(("matrix_timings", recorded.steps))
    request.node.user_properties.append(("matrix_reuses", recorded.reuses))
    return recorded


@pytest.fixture(scope="session")
def step_results(shared_dir: Path) -> StepResults:
    """The matrix steps this run finished, by the hash of their inputs."""
    return StepResults(shared_dir / "step-results")


# --- the timing and fuzz tables, assembled where the reports arrive (the xdist controller) -


def timings_json_path(config: pytest.Config) -> Path:
    option = config.option.timings_json
    return Path(option) if option else config.rootpath / ".results" / "matrix-timings.json"


class MatrixTimings:
    """Collects each combination's step timings from the test reports and prints them as a
    table; the columns are the steps the matrix test timed, in the order it ran them."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: list[dict[str, Any]] = []
        self.started = time.perf_counter()

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if report.when != "call" or "matrix_timings" not in properties:
            return
        steps = dict(properties["matrix_timings"])
        total = steps.pop("total", None)
        self.rows.append(
            {
                "combination": properties["matrix_combination"],
                **steps,
                "total": total,
                "outcome": report.outcome,
                "reused": dict(properties.get("matrix_reuses") or {}),
            }
        )

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        wall = round(time.perf_counter() - self.started, 1)
        columns = [
            key
            for key in dict.fromkeys(key for row in self.rows for key in row)
            if key not in {"combination", "outcome", "reused"}
        ]
        width = max(len("combination"), *(len(row["combination"]) for row in self.rows))
        write = terminalreporter.write_line
        terminalreporter.section("template matrix timings (seconds)")
        write(f"{'combination':<{width}} " + " ".join(f"{c:>6}" for c in columns) + "  outcome")
        for row in self.rows:
            cells = " ".join(
                f"{row[c]:>6.1f}" if row.get(c) is not None else f"{'-':>6}" for c in columns
            )
            write(f"{row['combination']:<{width}} {cells}  {row['outcome']}{reused_from(row)}")
        busy = sum(row["total"] or 0 for row in self.rows)
        reusing = sum(1 for row in self.rows if reused_steps(row["reused"]))
        replays = sum(1 for row in self.rows if REPLAYED_LOCK in row["reused"])
        write(f"{len(self.rows)} combinations, {busy:.1f} s of work, {wall:.1f} s wall")
        write(
            f"{reusing} combinations reused steps of a twin with byte-identical inputs "
            "(step_reuse.py); their time is the wait for it"
        )
        write(
            f"{replays} resolved their uv.lock offline, byte-identical to the one that the "
            f"named combination's identical pyproject.toml got online ({REPLAYED_LOCK})"
        )
        self.write_json(wall, terminalreporter)

    def write_json(self, wall: float, terminalreporter: Any) -> None:
        path = timings_json_path(self.config)
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "matrix": self.config.option.matrix,
            "workers": getattr(self.config.option, "numprocesses", None) or 1,
            "wall_seconds": wall,
            "combinations": self.rows,
        }
        path.write_text(json.dumps(report, indent=2) + "\n")
        terminalreporter.write_line(f"timings written to {path}")


def reused_from(row: dict[str, Any]) -> str:
    """`  reused from auth+docker: lint #1a2b3c4d, ...` for a row that reused steps."""
    return f"  reused from {describe_reuses(row['reused'])}" if row["reused"] else ""


class FuzzCases:
    """Collects the cases schemathesis generated for each fuzzed combination from the test
    reports (test_fuzz.py records them), and prints them with the total at the end."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.rows: list[dict[str, Any]] = []

    @pytest.hookimpl
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        properties = dict(report.user_properties)
        if report.when != "call" or "fuzz_combination" not in properties:
            return
        self.rows.append(
            {
                "combination": properties["fuzz_combination"],
                "cases": properties.get("fuzz_cases"),
                "fuzz": properties.get("fuzz_seconds"),
                "total": round(report.duration, 2),
                "outcome": report.outcome,
            }
        )

    @pytest.hookimpl
    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.rows or hasattr(self.config, "workerinput"):
            return
        width = max(len("combination"), *(len(row["combination"]) for row in self.rows))
        write = terminalreporter.write_line
        terminalreporter.section("fuzz cases per combination")
        write(f"{'combination':<{width}}  cases  fuzz s  total s  outcome")
        for row in self.rows:
            cases = f"{row['cases']:>5}" if row["cases"] is not None else f"{'-':>5}"
            fuzz = f"{row['fuzz']:>6.1f}" if row["fuzz"] is not None else f"{'-':>6}"
            write(
                f"{row['combination']:<{width}}  {cases}  {fuzz}  {row['total']:>7.1f}  "
                f"{row['outcome']}"
            )
        cases = sum(row["cases"] or 0 for row in self.rows)
        busy = sum(row["total"] for row in self.rows)
        write(f"{len(self.rows)} combinations, {cases} cases, {busy:.1f} s of work")
        # Next to the matrix timings, in whichever directory --timings-json names.
        path = timings_json_path(self.config).with_name("fuzz-cases.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        report = {
            "fuzz": self.config.option.fuzz,
            "workers": getattr(self.config.option, "numprocesses", None) or 1,
            "cases": cases,
            "combinations": self.rows,
        }
        path.write_text(json.dumps(report, indent=2) + "\n")
        write(f"fuzz cases written to {path}")


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(MatrixTimings(config), "template-matrix-timings")
    config.pluginmanager.register(FuzzCases(config), "template-fuzz-cases")
    config.pluginmanager.register(ImageReport(config), "template-docker-images")
