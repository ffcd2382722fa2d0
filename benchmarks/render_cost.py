"""Render cost: milliseconds to render one project, all features off and all on.

    uv run --group bench python benchmarks/render_cost.py [--repeats 30]

Each render goes through cookiecutter's Python API with both hooks, into a fresh directory;
the table gives the median, p10 and p90 of the repeats after two warm-up renders. The `cli`
rows time the `cookiecutter` command instead (a new interpreter each time: imports included).
The hooks' slow optional steps are skipped (PRSM_TEMPLATE_SKIP_LOCK=1: no `uv lock`, which
asks the package index) unless `--with-optional-steps`; the environment variables the hooks
read are listed in the output, and `--env NAME=VALUE` sets more.
Writes benchmarks/results/render_cost.json and render_cost.png.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    SKIP_OPTIONAL_STEPS,
    TEMPLATE_ROOT,
    answers,
    machine,
    pyplot,
    relative,
    render,
    save_chart,
    table,
    write_json,
)

VIAS = {
    "api": "Python API, hooks",
    "api_without_hooks": "Python API, no hooks (no pruning)",
    "cli": "cookiecutter CLI, hooks",
}
COLORS = {"api": "#4c72b0", "api_without_hooks": "#b8c4dc", "cli": "#dd8452"}

ENV_READ = re.compile(r"""(?:environ(?:\.get)?\(?\[?|getenv\()\s*["']([A-Z0-9_]+)["']""")


def hook_env_vars() -> list[str]:
    """Names of the environment variables the template's hooks read."""
    found: set[str] = set()
    for hook in sorted((TEMPLATE_ROOT / "hooks").glob("*.py")):
        found.update(ENV_READ.findall(hook.read_text()))
    return sorted(found)


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def time_api(
    extra: dict[str, Any],
    repeats: int,
    warmup: int,
    scratch: Path,
    *,
    hooks: bool = True,
    skip_optional: bool = True,
) -> list[float]:
    samples = []
    for i in range(warmup + repeats):
        out = scratch / f"api-{sum(extra.values())}-{hooks}-{i}"
        started = time.perf_counter()
        render(out, extra, hooks=hooks, skip_optional=skip_optional)
        elapsed = (time.perf_counter() - started) * 1000
        if i >= warmup:
            samples.append(elapsed)
    return samples


def time_cli(
    extra: dict[str, Any], repeats: int, scratch: Path, skip_optional: bool
) -> list[float]:
    cookiecutter = Path(sys.executable).with_name("cookiecutter")
    command = (
        [str(cookiecutter)] if cookiecutter.is_file() else [sys.executable, "-m", "cookiecutter"]
    )
    pairs = [f"{key}={str(value).lower()}" for key, value in extra.items()]
    samples = []
    for i in range(repeats + 1):
        out = scratch / f"cli-{sum(extra.values())}-{i}"
        started = time.perf_counter()
        subprocess.run(
            [*command, "--no-input", "-o", str(out), str(TEMPLATE_ROOT), *pairs],
            check=True,
            capture_output=True,
            env={**os.environ, **(SKIP_OPTIONAL_STEPS if skip_optional else {})},
        )
        if i:
            samples.append((time.perf_counter() - started) * 1000)
    return samples


def project_size(path: Path) -> tuple[int, int]:
    files = [p for p in path.rglob("*") if p.is_file()]
    return len(files), sum(p.stat().st_size for p in files)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeats", type=int, default=30, help="timed renders per case (API)")
    parser.add_argument("--cli-repeats", type=int, default=10, help="timed renders per case (CLI)")
    parser.add_argument(
        "--with-optional-steps",
        action="store_true",
        help="let the hooks run their slow optional steps (uv lock)",
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set for the hooks, e.g. to skip a slow optional step",
    )
    args = parser.parse_args()

    for pair in args.env:
        name, _, value = pair.partition("=")
        os.environ[name] = value
    read = hook_env_vars()
    print(f"hooks read: {', '.join(read) or 'no environment variables'}")
    skip = not args.with_optional_steps
    set_here = [*(f"{k}={v}" for k, v in SKIP_OPTIONAL_STEPS.items() if skip), *args.env]
    print(f"set for this run: {', '.join(set_here) or 'nothing'}")

    cases = {"all-off": answers(False), "all-on": answers(True)}
    rows, results = [], {}
    with tempfile.TemporaryDirectory(prefix="render-cost-") as tmp:
        scratch = Path(tmp)
        for name, extra in cases.items():
            api = time_api(extra, args.repeats, 2, scratch, skip_optional=skip)
            bare = time_api(extra, args.repeats, 2, scratch, hooks=False)
            cli = time_cli(extra, args.cli_repeats, scratch, skip)
            files, size = project_size(render(scratch / f"size-{name}", extra, skip_optional=skip))
            results[name] = {
                "files": files,
                "bytes": size,
                "api_ms": {
                    "median": round(statistics.median(api), 1),
                    "p10": round(quantile(api, 0.1), 1),
                    "p90": round(quantile(api, 0.9), 1),
                    "samples": [round(s, 2) for s in api],
                },
                "api_without_hooks_ms": {
                    "median": round(statistics.median(bare), 1),
                    "p10": round(quantile(bare, 0.1), 1),
                    "p90": round(quantile(bare, 0.9), 1),
                    "samples": [round(s, 2) for s in bare],
                },
                "cli_ms": {
                    "median": round(statistics.median(cli), 1),
                    "p10": round(quantile(cli, 0.1), 1),
                    "p90": round(quantile(cli, 0.9), 1),
                    "samples": [round(s, 2) for s in cli],
                },
            }
            for how, label in VIAS.items():
                r = results[name][f"{how}_ms"]
                rows.append(
                    [name, label, files, r["median"], r["p10"], r["p90"], len(r["samples"])]
                )

    print()
    print(table(["project", "via", "files", "median ms", "p10 ms", "p90 ms", "renders"], rows))
    report = {
        "benchmark": "render_cost",
        "machine": machine(),
        "hook_env_vars_read": read,
        "env_set": set_here,
        "cases": results,
    }
    json_path = write_json("render_cost.json", report)
    chart_path = chart(results)
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    return 0


def chart(results: dict[str, Any]) -> Path:
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(7, 3.2))
    labels, medians, low, high, colors = [], [], [], [], []
    for name, r in results.items():
        for how, label in VIAS.items():
            m = r[f"{how}_ms"]
            color = COLORS[how]
            labels.append(f"{name}: {label}")
            medians.append(m["median"])
            low.append(m["median"] - m["p10"])
            high.append(m["p90"] - m["median"])
            colors.append(color)
    positions = range(len(labels))
    ax.barh(positions, medians, xerr=[low, high], color=colors, capsize=3)
    for y, value, above in zip(positions, medians, high, strict=True):
        ax.text(value + above, y, f"  {value:.0f} ms", va="center", ha="left")
    ax.set_yticks(list(positions), labels)
    ax.invert_yaxis()
    ax.set_xlabel("milliseconds per rendered project (median; bars: p10-p90)")
    ax.set_xlim(0, max(m + h for m, h in zip(medians, high, strict=True)) * 1.25)
    ax.set_title("Render cost of one project")
    return save_chart(figure, "render_cost.png")


if __name__ == "__main__":
    sys.exit(main())
