"""Turn the matrix timing reports (`--timings-json`, one per run or shard) into one Markdown
table, for a CI job summary:

    python3 tests/timing_summary.py .results/*.json >> "$GITHUB_STEP_SUMMARY"

Slowest combination first. Columns are the steps the reports carry, in their order, so a step
added to the matrix test shows up here without a change. A fuzz report (`fuzz-cases.json`,
written next to the timings) among the files adds a second table: the cases schemathesis
generated per combination, and their total. A combination that reused a twin's step
results (or replayed a lock) names the twin and the hashes in a last column, as the timing
table at the end of a pytest run does. Standard library only (with step_reuse.py, which is
too): CI runs it with the runner's own python3, so the table appears even when the test
environment failed.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from step_reuse import describe_reuses

TITLE = "Template matrix timings (seconds)"
FUZZ_TITLE = "Fuzz cases per combination"


def merge(reports: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One report from several: every combination, the matrix modes, and the summed wall time
    (each shard's own wall time, as the shards run side by side)."""
    reports = list(reports)
    return {
        "matrix": "+".join(sorted({str(r.get("matrix", "?")) for r in reports})) or "?",
        "runs": len(reports),
        "wall_seconds": [r.get("wall_seconds") for r in reports],
        "combinations": [row for r in reports for row in r.get("combinations", [])],
    }


def step_columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    columns = dict.fromkeys(key for row in rows for key in row)
    return [key for key in columns if key not in {"combination", "outcome", "reused"}]


def _seconds(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else "-"


def markdown(report: Mapping[str, Any]) -> str:
    rows = sorted(report["combinations"], key=lambda row: -(row.get("total") or 0))
    if not rows:
        return f"### {TITLE}\n\nNo combination ran.\n"
    columns = step_columns(rows)
    failed = sum(row.get("outcome") != "passed" for row in rows)
    work = sum(row.get("total") or 0 for row in rows)
    walls = ", ".join(_seconds(w) for w in report["wall_seconds"])
    runs = report["runs"]
    # Which twin a step's result came from, and the hashes (step_reuse.py), when any did.
    reuse = any(row.get("reused") for row in rows)
    lines = [
        f"### {TITLE}",
        "",
        f"{report['matrix']} matrix, {runs} run{'s' * (runs != 1)}: {len(rows)} combinations, "
        f"{failed} not passed; {work:.1f} s of work, wall {walls} s",
        "",
        "| combination | "
        + " | ".join(columns)
        + " | outcome |"
        + (" reused from (step #hash) |" if reuse else ""),
        "| --- | " + " | ".join("---:" for _ in columns) + " | --- |" + (" --- |" if reuse else ""),
    ]
    for row in rows:
        cells = [f"`{row.get('combination')}`", *(_seconds(row.get(c)) for c in columns)]
        outcome = str(row.get("outcome"))
        cells.append(outcome if outcome == "passed" else f"**{outcome}**")
        if reuse:
            cells.append(describe_reuses(row.get("reused") or {}))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def fuzz_markdown(reports: Sequence[Mapping[str, Any]]) -> str:
    """The fuzz reports' combinations, most cases first, with the cases and seconds summed."""
    rows = sorted(
        (row for r in reports for row in r.get("combinations", [])),
        key=lambda row: -(row.get("cases") or 0),
    )
    if not rows:
        return f"### {FUZZ_TITLE}\n\nNo combination was fuzzed.\n"
    modes = "+".join(sorted({str(r.get("fuzz", "?")) for r in reports}))
    failed = sum(row.get("outcome") != "passed" for row in rows)
    cases = sum(row.get("cases") or 0 for row in rows)
    work = sum(row.get("total") or 0 for row in rows)
    lines = [
        f"### {FUZZ_TITLE}",
        "",
        f"{modes} fuzz set: {len(rows)} combinations, {failed} not passed; {cases} cases, "
        f"{work:.1f} s of work",
        "",
        "| combination | cases | fuzz s | total s | outcome |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for row in rows:
        outcome = str(row.get("outcome"))
        cells = [
            f"`{row.get('combination')}`",
            str(row["cases"]) if row.get("cases") is not None else "-",
            _seconds(row.get("fuzz")),
            _seconds(row.get("total")),
            outcome if outcome == "passed" else f"**{outcome}**",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(arguments: Sequence[str]) -> int:
    paths = [Path(argument) for argument in arguments]
    present = [path for path in paths if path.is_file()]
    for missing in sorted(set(paths) - set(present)):
        print(f"warning: no timing report at {missing}", file=sys.stderr)
    reports = [json.loads(path.read_text(encoding="utf-8")) for path in present]
    fuzz = [report for report in reports if "fuzz" in report]
    matrix = [report for report in reports if "fuzz" not in report]
    if matrix or not fuzz:
        sys.stdout.write(markdown(merge(matrix)))
    if fuzz:
        sys.stdout.write(("\n" if matrix else "") + fuzz_markdown(fuzz))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
