"""Sample a running service with py-spy and say where its CPU time goes.

py-spy's raw output is one line per distinct stack, `frame;frame;... count`, each frame
`function (path/file.py:line)`. From it this module reports self time by area (the
library or module a sampled frame belongs to), inclusive time by area (samples with any frame
of that area on the stack), the functions with the most self time, the service's own functions
by inclusive time, and each sample once by the deepest frame of the service's own code on its
stack and the area its leaf ran in (`prsm/client.py:PRSMClient.query -> httpx`): what the
service's code spends its time on, adding up to 100%.
Sampling uses `--gil`: only the thread holding the GIL is counted, so idle worker threads
waiting on a queue do not show up as work.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# File prefixes -> the area a frame is charged to; the first match wins.
AREAS: tuple[tuple[str, str], ...] = (
    ("logging/", "logging (stdlib)"),
    ("json/", "json (stdlib)"),
    ("asyncio/", "asyncio (stdlib)"),
    ("uvicorn/", "uvicorn + httptools"),
    ("httptools/", "uvicorn + httptools"),
    ("uvloop/", "uvicorn + httptools"),
    ("starlette/", "starlette"),
    ("fastapi/", "fastapi"),
    ("pydantic/", "pydantic"),
    ("pydantic_core/", "pydantic"),
    ("pydantic_settings/", "pydantic"),
    ("httpx/", "httpx (client to the engine)"),
    ("httpcore/", "httpx (client to the engine)"),
    ("anyio/", "anyio"),
    ("redis/", "redis client"),
    ("sqlalchemy/", "sqlalchemy"),
    ("aiosqlite/", "sqlalchemy"),
    ("asyncpg/", "sqlalchemy"),
    ("jwt/", "jwt"),
    ("prometheus_client/", "prometheus"),
)


@dataclass(frozen=True)
class Frame:
    function: str
    file: str
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.function}"


def parse_frame(text: str) -> Frame:
    match = FRAME.match(text)
    if not match:
        return Frame(text, "?", None)
    line = match.group("line")
    return Frame(match.group("function"), match.group("file"), int(line) if line else None)


def area_of(frame: Frame, package: str | None) -> str:
    if package and frame.file.startswith(f"{package}/"):
        module = frame.file.removeprefix(f"{package}/").removesuffix(".py")
        return f"service: {module.replace('/', '.')}"
    for prefix, area in AREAS:
        if frame.file.startswith(prefix):
            return area
    if frame.file.startswith("<frozen importlib"):
        return "importlib (stdlib)"
    if frame.file.startswith("<frozen "):
        return frame.file.removeprefix("<frozen ").rstrip(">").lstrip("_") + " (stdlib)"
    if "/" not in frame.file and frame.file.endswith(".py"):
        return frame.file.removesuffix(".py") + " (stdlib)"
    return "other"


def summarize(raw: str, package: str | None, top: int = 15) -> dict[str, Any]:
    total = 0
    self_area: Counter[str] = Counter()
    incl_area: Counter[str] = Counter()
    self_function: Counter[str] = Counter()
    service_function: Counter[str] = Counter()
    below: Counter[str] = Counter()
    for line in raw.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [parse_frame(f) for f in stack.split(";")]
        total += count
        leaf = frames[-1]
        self_area[area_of(leaf, package)] += count
        self_function[leaf.where] += count
        areas = [area_of(f, package) for f in frames]
        for area in set(areas):
            incl_area[area] += count
        ours = [i for i, area in enumerate(areas) if area.startswith("service:")]
        for where in {frames[i].where for i in ours}:
            service_function[where] += count
        # Each sample once: the deepest frame of the service's code, and the area it was in.
        if not ours:
            # SQLAlchemy's asyncio layer runs in greenlets, whose stacks py-spy shows apart
            # from the code that awaited them: those start in sqlalchemy, not in the loop.
            where = "greenlet" if areas[0] == "sqlalchemy" else "no service frame"
            below[f"({where}) {areas[-1]}"] += count
        elif ours[-1] == len(frames) - 1:
            below[f"{frames[-1].where} (its own code)"] += count
        else:
            below[f"{frames[ours[-1]].where} -> {areas[-1]}"] += count

    def shares(counter: Counter[str], n: int | None = None) -> list[dict[str, Any]]:
        return [
            {"name": name, "samples": count, "percent": round(100 * count / max(total, 1), 1)}
            for name, count in counter.most_common(n)
        ]

    return {
        "samples": total,
        "self_by_area": shares(self_area),
        "inclusive_by_area": shares(Counter({k: v for k, v in incl_area.items() if k != "other"})),
        "self_by_function": shares(self_function, top),
        "service_functions_inclusive": shares(service_function, top),
        "by_deepest_service_frame": shares(below, top),
    }


def find_py_spy() -> str | None:
    for candidate in (shutil.which("py-spy"), str(Path(sys.executable).with_name("py-spy"))):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


def record(pid: int, seconds: float, output: Path, rate: int = 200) -> subprocess.Popen[bytes]:
    """Start py-spy on `pid` for `seconds` (the caller drives load meanwhile and waits)."""
    py_spy = find_py_spy()
    if py_spy is None:
        raise RuntimeError("py-spy is not installed: `uv run --group bench` brings it")
    return subprocess.Popen(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(max(1, round(seconds))),
            "--rate",
            str(rate),
            "--format",
            "raw",
            "--gil",
            "--output",
            str(output),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def text_report(summary: dict[str, Any], title: str, rows: int = 12) -> str:
    lines = [f"{title}: {summary['samples']} samples"]
    for key, label in (
        ("self_by_area", "self time by area"),
        ("inclusive_by_area", "inclusive time by area (any frame of it on the stack)"),
        ("self_by_function", "self time by function"),
        ("service_functions_inclusive", "the service's own functions, inclusive"),
        (
            "by_deepest_service_frame",
            "each sample by the deepest service frame -> the area it ran in",
        ),
    ):
        lines.append(f"  {label}:")
        lines += [f"    {e['percent']:5.1f}%  {e['name']}" for e in summary[key][:rows]]
    return "\n".join(lines)
