"""What the benchmarks share: the template's answers, rendering, tools, tables, results, charts."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

TEMPLATE_ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = TEMPLATE_ROOT / "benchmarks" / "results"

# Variables that would point a rendered project's uv at the template's own environment.
FOREIGN_ENV = ("VIRTUAL_ENV", "UV_PROJECT", "UV_PROJECT_ENVIRONMENT", "PYTHONPATH", "PYTHONHOME")


# --- the template ---------------------------------------------------------------------------


def declared() -> dict[str, Any]:
    return json.loads((TEMPLATE_ROOT / "cookiecutter.json").read_text())


def toggles() -> list[str]:
    """The template's boolean answers, read from cookiecutter.json."""
    return [key for key, value in declared().items() if isinstance(value, bool)]


def answers(all_on: bool) -> dict[str, bool]:
    return dict.fromkeys(toggles(), all_on)


# What the post-generation hook honours to skip its slow optional steps (`uv lock`, which asks
# the package index): benchmarks render with these set unless told otherwise.
SKIP_OPTIONAL_STEPS = {"PRSM_TEMPLATE_SKIP_LOCK": "1"}


def render(
    output_dir: Path, extra: Mapping[str, Any], *, hooks: bool = True, skip_optional: bool = True
) -> Path:
    """Render the template through cookiecutter's Python API, hooks included unless told.

    The hooks run as child processes that print to the inherited descriptors, so those are
    silenced for the duration.
    """
    from cookiecutter.main import cookiecutter

    output_dir.mkdir(parents=True, exist_ok=True)
    with quiet(), environment(SKIP_OPTIONAL_STEPS if skip_optional else {}):
        return Path(
            cookiecutter(
                str(TEMPLATE_ROOT),
                no_input=True,
                extra_context=dict(extra),
                output_dir=str(output_dir),
                overwrite_if_exists=True,
                accept_hooks=hooks,
            )
        )


@contextlib.contextmanager
def environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Send file descriptors 1 and 2 (this process's and its children's) to /dev/null."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as null:
        os.dup2(null.fileno(), 1)
        os.dup2(null.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


# --- tools ----------------------------------------------------------------------------------


def find_uv() -> str:
    """uv from $UV, PATH or beside this interpreter; else install it into a private venv."""
    for candidate in (
        os.environ.get("UV"),
        shutil.which("uv"),
        str(Path(sys.executable).with_name("uv")),
    ):
        if candidate and Path(candidate).is_file():
            return candidate
    venv = TEMPLATE_ROOT / "benchmarks" / ".uv-venv"
    uv = venv / "bin" / "uv"
    if not uv.is_file():
        print("uv not found: installing it into benchmarks/.uv-venv", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "uv"], check=True)
    return str(uv)


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without what ties uv to the template's own venv."""
    env = {key: value for key, value in os.environ.items() if key not in FOREIGN_ENV}
    env.setdefault("UV_PYTHON_DOWNLOADS", "never")
    env.setdefault("UV_NO_PROGRESS", "1")
    env.update(extra)
    return env


# With two or more cores the service gets core 0 and the load generator core 1, so that they
# do not take turns on one core; BENCH_NO_PIN=1 turns this off.
PIN = (os.cpu_count() or 1) >= 2 and not os.environ.get("BENCH_NO_PIN")


def pin_to(core: int) -> None:
    """For `preexec_fn`: run the child on one core (when pinning is on)."""
    if PIN and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {core})


def pin_running(pid: int, core: int) -> None:
    """Move a running process to one core (when pinning is on): each of its threads, since
    affinity is per thread; the threads it starts later take its main thread's."""
    if not (PIN and hasattr(os, "sched_setaffinity")):
        return
    for thread in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(thread.name), {core})


def warn_if_busy(limit: float = 1.0) -> None:
    one_minute = os.getloadavg()[0]
    if one_minute > limit:
        print(
            f"warning: load average {one_minute:.1f} on {os.cpu_count()} cores: other work is"
            " running and will skew the numbers",
            file=sys.stderr,
        )


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "load_average_when_written": [round(x, 2) for x in os.getloadavg()],
        "pinned": "service on core 0, load generator on core 1" if PIN else "no",
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }


# --- output ---------------------------------------------------------------------------------


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable as plain text too); numbers right-aligned."""
    cells = [[_cell(value) for value in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [
        all(isinstance(row[i], int | float) or row[i] is None for row in rows)
        for i in range(len(headers))
    ]

    def line(values: Sequence[str]) -> str:
        padded = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return "| " + " | ".join(padded) + " |"

    rule = [
        ("-" * (w - 1) + ":") if right else "-" * w
        for w, right in zip(widths, numeric, strict=True)
    ]
    return "\n".join([line(headers), line(rule), *(line(r) for r in cells)])


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.1f}"
        return f"{value:.2f}" if abs(value) >= 1 or value == 0 else f"{value:.3f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def write_json(name: str, data: Mapping[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {"figure.dpi": 110, "font.size": 9, "axes.spines.top": False, "axes.spines.right": False}
    )
    return plt


def save_chart(figure: Any, name: str) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / name
    figure.savefig(path, bbox_inches="tight")
    return path


def relative(path: Path) -> str:
    try:
        return path.resolve().relative_to(TEMPLATE_ROOT).as_posix()
    except ValueError:
        return str(path)
