"""Matrix cost: render, env, lint, types and tests time of every combination, and the wall time.

    uv run --group bench python benchmarks/matrix_cost.py [--workers N] [--only-matrix]
    uv run --group bench python benchmarks/matrix_cost.py --from-json .results/matrix-timings.json
    uv run --group bench python benchmarks/matrix_cost.py --suites-only

Runs the template's tests the way CI does (`pytest tests --matrix=full -n WORKERS --dist
worksteal`; `--only-matrix` runs tests/test_matrix.py alone). The harness times each step of
each combination (bake = render, then whatever steps it runs) and writes them as JSON
(`--timings-json`); this prints them as a table with the totals per step, the wall time
against the 180 s target, how much busy time 120 s would take off, and the CPU time of every
process the run waited for, over the cores: the wall time no packing of that work gets below.
`--from-json` reads the JSON of an earlier run instead. Combinations that took a step's
result from a twin with byte-identical inputs (tests/step_reuse.py) name it and the hashes,
and those whose uv.lock was resolved offline to the bytes another combination's got online
name that one (`lock`).

It then times the all-on and all-off projects' own suites as their users run them (`uv run
pytest` in the rendered project, SQLite users, the median of three warm runs after one that
compiles the bytecode) against their targets. Writes benchmarks/results/matrix_cost.json and
matrix_cost.png.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from common import (
    TEMPLATE_ROOT,
    answers,
    clean_env,
    find_uv,
    machine,
    pyplot,
    relative,
    render,
    save_chart,
    table,
    warn_if_busy,
    write_json,
)

# What the template's tests count as the full matrix, and how they name a reused step.
sys.path.insert(0, str(TEMPLATE_ROOT / "tests"))
from baking import Template, combinations
from step_reuse import REPLAYED_LOCK, describe_reuses, reused_steps

TARGET_S = 180
STRETCH_S = 120
# The rendered projects' own suites, warm, as `uv run pytest` in the project.
SUITE_TARGETS_S = {"all-on": 12.0, "all-off": 4.0}
SUITE_RUNS = 3
PALETTE = (
    "#8c8c8c",
    "#64b5cd",
    "#4c72b0",
    "#55a868",
    "#dd8452",
    "#8172b3",
    "#c44e52",
    "#937860",
    "#da8bc3",
    "#ccb974",
)
NOT_STEPS = {"combination", "outcome", "total", "reused"}


def steps_of(rows: list[dict[str, Any]]) -> list[str]:
    """The steps the harness timed, in the order it ran them."""
    return [k for k in dict.fromkeys(k for row in rows for k in row) if k not in NOT_STEPS]


def run_harness(
    workers: int, only_matrix: bool, output: Path, extra: list[str]
) -> tuple[float, float, int, str]:
    """Wall and CPU seconds of the template's tests, pytest's exit status and its last line.
    The CPU is every process the run started and waited for (not what the Docker engine's own
    processes spend on image builds and containers)."""
    command = [
        sys.executable,
        "-m",
        "pytest",
        "tests/test_matrix.py" if only_matrix else "tests",
        "--matrix=full",
        "-n",
        str(workers),
        "--dist",
        "worksteal",
        "--timings-json",
        str(output),
        "-q",
        *extra,
    ]
    print("running: " + " ".join(["pytest", *command[3:]]), flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=TEMPLATE_ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    lines = completed.stdout.strip().splitlines() or [""]
    if completed.returncode:
        # What failed, and why: from pytest's first failure report to the end.
        start = next((i for i, line in enumerate(lines) if " FAILURES " in line), len(lines) - 80)
        print("\n".join(lines[max(start, 0) :]), flush=True)
    return round(wall, 1), round(cpu, 1), completed.returncode, lines[-1]


def full_matrix_size() -> int:
    """How many combinations `--matrix=full` has, as the template's tests count them."""
    return len(combinations(Template(TEMPLATE_ROOT), "full"))


def suite_seconds(name: str, workdir: Path) -> dict[str, Any]:
    """Wall time of `uv run pytest` in the rendered project, as a user runs it, warm."""
    project = render(workdir / name, answers(name == "all-on"))
    # Bytecode written as on a developer's machine; no DATABASE_URL: the SQLite default.
    env = clean_env()
    for variable in ("PYTHONDONTWRITEBYTECODE", "DATABASE_URL"):
        env.pop(variable, None)
    uv = find_uv()
    subprocess.run([uv, "sync", "-q"], cwd=project, env=env, check=True)
    times = []
    for run in range(SUITE_RUNS + 1):
        started = time.perf_counter()
        completed = subprocess.run(
            [uv, "run", "pytest", "-q", "-p", "no:randomly"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode:
            raise RuntimeError(f"{name}'s tests failed:\n{completed.stdout[-3000:]}")
        if run:
            times.append(round(time.perf_counter() - started, 2))
    summary = completed.stdout.strip().splitlines()[-1]
    median = sorted(times)[len(times) // 2]
    target = SUITE_TARGETS_S[name]
    print(f"  {name}: {median:.1f} s (runs {times}; {summary})", flush=True)
    return {"seconds": median, "runs": times, "target": target, "met": median <= target}


def analyse(
    harness: dict[str, Any], process_wall: float | None, cpu: float | None
) -> dict[str, Any]:
    rows = harness["combinations"]
    workers = int(harness.get("workers") or 1)
    wall = float(harness["wall_seconds"])
    step_totals = {s: round(sum(r.get(s) or 0 for r in rows), 1) for s in steps_of(rows)}
    busy = round(sum(r.get("total") or 0 for r in rows), 1)
    slowest = max(rows, key=lambda r: r.get("total") or 0)
    # Only a run of every combination counts: a selection (-k, a shard) proves nothing.
    complete = len(rows) == full_matrix_size()
    ideal = busy / workers
    return {
        "matrix": harness.get("matrix"),
        "workers": workers,
        "combinations": len(rows),
        "failed": [r["combination"] for r in rows if r.get("outcome") != "passed"],
        "reusing": sum(1 for r in rows if reused_steps(r.get("reused") or {})),
        "lock_replays": sum(1 for r in rows if REPLAYED_LOCK in (r.get("reused") or {})),
        "wall_seconds": wall,
        "process_wall_seconds": process_wall,
        # What the run's processes spent on the machine's cores: no packing of the same work
        # gets the wall time under cpu / cores.
        "cpu_seconds": cpu,
        "cores": os.cpu_count(),
        "cpu_floor_wall_seconds": round(cpu / (os.cpu_count() or 1), 1) if cpu else None,
        "busy_seconds": busy,
        "ideal_wall_seconds": round(ideal, 1),
        # The other template tests in the run, and workers idling at the end.
        "wall_beyond_matrix_seconds": round(wall - ideal, 1),
        "step_totals_seconds": step_totals,
        "step_shares": {s: round(v / busy, 3) if busy else 0 for s, v in step_totals.items()},
        "mean_per_combination_seconds": round(busy / max(len(rows), 1), 2),
        "slowest": {"combination": slowest["combination"], "total": slowest.get("total")},
        "target_seconds": TARGET_S,
        "complete": complete,
        "meets_target": wall <= TARGET_S and complete,
        # At the same packing, every second of wall time over 120 s is `workers` busy seconds.
        "to_reach_120_s": {"busy_seconds_to_lose": round(max(0.0, wall - STRETCH_S) * workers, 1)},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) + 1,
        help="pytest-xdist workers (default: one more than the cores, as .ci/run runs them)",
    )
    parser.add_argument(
        "--only-matrix", action="store_true", help="run tests/test_matrix.py, not all of tests/"
    )
    parser.add_argument("--from-json", type=Path, help="read a timings JSON instead of running")
    parser.add_argument(
        "--suites-only", action="store_true", help="time the two projects' own suites alone"
    )
    parser.add_argument("pytest_args", nargs="*", help="passed on to pytest (after --)")
    args = parser.parse_args()

    print("the projects' own suites, warm:", flush=True)
    with tempfile.TemporaryDirectory(prefix="matrix-cost-suites-") as tmp:
        suites = {name: suite_seconds(name, Path(tmp)) for name in SUITE_TARGETS_S}
    if args.suites_only:
        return 0 if all(suite["met"] for suite in suites.values()) else 1

    process_wall: float | None = None
    cpu: float | None = None
    outcome = None
    if args.from_json:
        source = relative(args.from_json)
        harness = json.loads(args.from_json.read_text())
    else:
        warn_if_busy()
        with tempfile.TemporaryDirectory(prefix="matrix-cost-") as tmp:
            timings = Path(tmp) / "matrix-timings.json"
            process_wall, cpu, code, outcome = run_harness(
                args.workers, args.only_matrix, timings, args.pytest_args
            )
            print(f"pytest exited {code}: {outcome}")
            if not timings.exists():
                sys.exit("the harness wrote no timings; is it a version with --timings-json?")
            harness = json.loads(timings.read_text())
        source = "this run of the harness"
    summary = analyse(harness, process_wall, cpu)

    steps = steps_of(harness["combinations"])
    headers = ["combination", *steps, "total", "outcome", "reused from (step #hash)"]
    rows = [
        [
            r["combination"],
            *(r.get(s) for s in steps),
            r.get("total"),
            r.get("outcome"),
            describe_reuses(r.get("reused") or {}),
        ]
        for r in harness["combinations"]
    ]
    rows.append(
        [
            "sum (busy time)",
            *summary["step_totals_seconds"].values(),
            summary["busy_seconds"],
            "",
            f"{summary['reusing']} reused steps, {summary['lock_replays']} replayed locks",
        ]
    )
    print()
    print(table(headers, rows))
    print()
    print(
        table(
            ["", "seconds"],
            [
                [f"wall time, {summary['workers']} workers (harness)", summary["wall_seconds"]],
                ["wall time of the pytest process", process_wall],
                ["CPU time of the run, all processes", cpu],
                [
                    f"CPU time / {summary['cores']} cores (no packing goes below)",
                    summary["cpu_floor_wall_seconds"],
                ],
                ["busy time (sum over combinations)", summary["busy_seconds"]],
                ["busy / workers (perfect packing)", summary["ideal_wall_seconds"]],
                [
                    "the rest: other tests, idle workers at the end",
                    summary["wall_beyond_matrix_seconds"],
                ],
                ["mean per combination", summary["mean_per_combination_seconds"]],
                [f"slowest: {summary['slowest']['combination']}", summary["slowest"]["total"]],
            ],
        )
    )
    shares = ", ".join(f"{s} {v:.0%}" for s, v in summary["step_shares"].items())
    print(f"\nshare of busy time: {shares}")
    verdict = "meets" if summary["meets_target"] else "misses"
    which = "full matrix" if summary["complete"] else "part of the matrix (not the full one)"
    print(f"{which}: {summary['wall_seconds']:.0f} s wall, {verdict} the {TARGET_S} s target")
    lose = summary["to_reach_120_s"]["busy_seconds_to_lose"]
    if lose:
        print(f"for {STRETCH_S} s: about {lose:.0f} s of busy time less over the matrix")
    if summary["failed"]:
        print(f"combinations that did not pass: {', '.join(summary['failed'])}")
    print()
    targets = [
        [
            "full matrix wall time",
            f"<= {TARGET_S} s",
            f"{summary['wall_seconds']:.0f} s",
            "yes" if summary["meets_target"] else "NO",
        ],
        *(
            [
                f"{name} project's own suite, warm",
                f"<= {suite['target']:.0f} s",
                f"{suite['seconds']:.1f} s",
                "yes" if suite["met"] else "NO",
            ]
            for name, suite in suites.items()
        ),
    ]
    print(table(["target", "ceiling", "measured", "met"], targets))
    summary["suites"] = suites

    report = {
        "benchmark": "matrix_cost",
        "machine": machine(),
        "source": source,
        "pytest_outcome": outcome,
        "summary": summary,
        "combinations": harness["combinations"],
    }
    json_path = write_json("matrix_cost.json", report)
    chart_path = chart(report)
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    return 0


def chart(report: dict[str, Any]) -> Path:
    plt = pyplot()
    rows = sorted(report["combinations"], key=lambda r: r.get("total") or 0, reverse=True)
    summary = report["summary"]
    figure, ax = plt.subplots(figsize=(7.5, 1.6 + 0.2 * len(rows)), layout="constrained")
    positions = range(len(rows))
    left = [0.0] * len(rows)
    steps = steps_of(rows)
    for step, color in zip(steps, PALETTE * 2, strict=False):
        widths = [r.get(step) or 0 for r in rows]
        ax.barh(positions, widths, left=left, color=color, label=step, height=0.75)
        left = [a + b for a, b in zip(left, widths, strict=True)]
    rest = [max(0.0, (r.get("total") or 0) - done) for r, done in zip(rows, left, strict=True)]
    ax.barh(positions, rest, left=left, color="#dddddd", label="other checks", height=0.75)
    ax.set_xlim(0, max(r.get("total") or 0 for r in rows) * 1.15)
    for y, r in zip(positions, rows, strict=True):
        mark = "" if r.get("outcome") == "passed" else f"  ({r.get('outcome')})"
        ax.text(
            r.get("total") or 0, y, f" {r.get('total') or 0:.1f}{mark}", va="center", fontsize=6.5
        )
    ax.set_yticks(list(positions), [r["combination"] for r in rows], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("seconds per combination (one worker)")
    figure.legend(loc="outside lower center", fontsize=7, ncols=len(steps) + 1, frameon=False)
    ax.set_title(
        f"{str(summary['matrix']).capitalize()} matrix: {summary['combinations']} combinations, "
        f"{summary['wall_seconds']:.0f} s wall on {summary['workers']} workers "
        f"(target {TARGET_S} s), {summary['busy_seconds']:.0f} s busy",
        fontsize=9,
    )
    return save_chart(figure, "matrix_cost.png")


if __name__ == "__main__":
    sys.exit(main())
