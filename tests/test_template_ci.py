"""The template repository's own GitHub Actions workflow: it is a valid workflow, its shards
split the full matrix exactly, and its timing table says what the reports say."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from baking import TEMPLATE_ROOT, Template, combinations
from sharding import parse_shard, shard_of
from timing_summary import markdown, merge

WORKFLOW = TEMPLATE_ROOT / ".github" / "workflows" / "template-ci.yml"
VALIDATE = ("-m", "check_jsonschema", "--builtin-schema", "vendor.github-workflows")
COLLECT = ("-m", "pytest", "tests/test_matrix.py", "--collect-only", "-q", "-p", "no:xdist")


@pytest.fixture(scope="module")
def workflow() -> dict[Any, Any]:
    loaded: dict[Any, Any] = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    return loaded


def test_the_workflow_matches_the_github_workflows_schema() -> None:
    result = subprocess.run(
        [sys.executable, *VALIDATE, str(WORKFLOW)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_push_runs_the_quick_mode(workflow: dict[Any, Any]) -> None:
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    assert "push" in triggers
    assert triggers["push"] is None, "pushes are filtered: the quick mode must run on every push"
    quick = workflow["jobs"]["quick"]
    assert "if" not in quick
    commands = [step.get("run", "") for step in quick["steps"]]
    assert any("pytest" in command and "--matrix" not in command for command in commands)


def shard_count(workflow: dict[Any, Any]) -> int:
    shards = workflow["jobs"]["full"]["strategy"]["matrix"]["shard"]
    assert shards == list(range(1, len(shards) + 1)), shards
    return len(shards)


def collected_in_parallel(*option_sets: tuple[str, ...]) -> list[list[str]]:
    """For each set of options, the matrix combinations pytest collects with it."""
    processes = [
        subprocess.Popen(
            [sys.executable, *COLLECT, "-p", "no:cacheprovider", *options],
            cwd=TEMPLATE_ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for options in option_sets
    ]
    results = []
    for process in processes:
        output, _ = process.communicate(timeout=120)
        assert process.returncode == 0, output
        nodes = [line for line in output.splitlines() if "::" in line]
        results.append([node.split("[", 1)[1].rstrip("]") for node in nodes])
    return results


def test_the_shards_hold_the_full_matrix_once_each(
    workflow: dict[Any, Any], template: Template
) -> None:
    count = shard_count(workflow)
    shards = collected_in_parallel(
        *(("--matrix=full", f"--shard={i}/{count}") for i in range(1, count + 1))
    )
    everything = [combination.id for combination in combinations(template, "full")]
    assert sorted(c for shard in shards for c in shard) == sorted(everything)
    assert max(map(len, shards)) - min(map(len, shards)) <= 1, "the shards are uneven"


@pytest.mark.parametrize("text", ["0/4", "5/4", "4", "a/b", "1/0", "-1/4"])
def test_a_shard_is_one_to_n_of_n(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match="is not a shard"):
        parse_shard(text)


def test_shards_are_dealt_like_cards() -> None:
    dealt = [shard_of(range(10), index, 3) for index in (1, 2, 3)]
    assert dealt == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]


def row(combination: str, outcome: str, **seconds: float | None) -> dict[str, Any]:
    return {"combination": combination, **seconds, "outcome": outcome}


def test_the_timing_table_lists_every_combination_slowest_first() -> None:
    reports = [
        {
            "matrix": "full",
            "wall_seconds": 12.0,
            "combinations": [row("none", "passed", bake=0.1, tests=2.0, total=3.0)],
        },
        {
            "matrix": "full",
            "wall_seconds": 20.5,
            "combinations": [row("auth+cache", "failed", bake=0.3, tests=None, total=9.34)],
        },
    ]
    table = markdown(merge(reports))
    rows = [line for line in table.splitlines() if line.startswith("| `")]
    assert rows == [
        "| `auth+cache` | 0.3 | - | 9.3 | **failed** |",
        "| `none` | 0.1 | 2.0 | 3.0 | passed |",
    ]
    assert "| combination | bake | tests | total | outcome |" in table
    assert "full matrix, 2 runs: 2 combinations, 1 not passed; 12.3 s of work" in table


def test_the_timing_table_names_the_twins_results_came_from() -> None:
    reused = row("docker", "passed", bake=0.1, tests=0.0, total=1.0)
    reused["reused"] = {"tests": "docker+kubernetes #0123456789ab", "lock": "none #ba9876543210"}
    report = {"matrix": "full", "wall_seconds": 5.0, "combinations": [reused]}

    table = markdown(merge([report]))

    assert "| combination | bake | tests | total | outcome | reused from (step #hash) |" in table
    assert (
        "| `docker` | 0.1 | 0.0 | 1.0 | passed | "
        "docker+kubernetes: tests #01234567; none: lock #ba987654 |"
    ) in table


def test_the_timing_summary_runs_as_a_script(tmp_path: Path) -> None:
    report = tmp_path / "timings.json"
    report.write_text(json.dumps({"matrix": "quick", "wall_seconds": 1.0, "combinations": []}))
    result = subprocess.run(
        [sys.executable, str(TEMPLATE_ROOT / "tests" / "timing_summary.py"), str(report)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout == "### Template matrix timings (seconds)\n\nNo combination ran.\n"
