"""Service cost: what the rendered service gives away to its plumbing, against a bare ceiling.

    uv run --group bench python benchmarks/service_cost.py

Renders the all-off and all-on projects, builds each with `uv sync --no-dev`, and starts
them and a bare FastAPI app (one endpoint returning a small JSON object, in the all-off
project's environment: the same FastAPI, uvicorn and uvloop) under the same uvicorn settings:
one worker on 127.0.0.1, no access log, the embedded PRSM engine, the local Redis; all-on runs
twice, its users in a SQLite file (the project's default) and in a new database on the local
PostgreSQL (`--databases`). The services log at LOG_LEVEL=INFO (their default) to a file.

Each endpoint is driven by wrk (when installed, else a bounded asyncio client: `--load`) at
1, 16 and 64 connections for `--seconds` each after a one-second warm-up: `/health`, an
`/ai/query` asked again and again (a cache hit when the cache is on), an `/ai/query` with a
unique prompt every time (a miss), and on all-on every query carries a bearer token. Each row
is also given as a ratio to the bare endpoint at the same connection count in the same run.

Targets: all-off `/ai/query` >= 50% of the bare requests/s, all-on cache hit >= 40%, p99 under
50 ms at 64 connections. For each miss (`--profile auto`) the service is sampled with py-spy
under the same load and the report says where the CPU time goes.
Writes benchmarks/results/service_cost.json and service_cost.png.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
import profiling
from common import (
    RESULTS_DIR,
    machine,
    pyplot,
    relative,
    save_chart,
    table,
    warn_if_busy,
    write_json,
)
from services import (
    Backing,
    Project,
    Service,
    build_projects,
    check_redis,
    running,
    start_bare,
    start_project,
    variants,
)

TARGET_P99_MS = 50.0
TARGET_QUERY_SHARE = {"all-off": 0.50, "all-on": 0.40}
JSON = {"Content-Type": "application/json"}


def scenarios(project: Project, service: Service) -> list[load.Scenario]:
    """The endpoints measured on one rendered service."""
    cache = project.has("use_redis_cache")
    if project.has("use_auth"):
        # The token names the user: one user asks the same question (and nothing else, so
        # its PRSM balance lasts), the misses rotate over the others.
        first, *others = service.header_sets
        return [
            load.Scenario("GET /health", "GET", "/health"),
            load.Scenario("GET /auth/me (token + user lookup)", "GET", "/auth/me", None, first),
            load.Scenario(
                f"POST /ai/query, {'cache hit' if cache else 'same prompt'}, with token",
                "POST",
                "/ai/query",
                '{"prompt": "What is 2+2?"}',
                {**JSON, **first},
            ),
            load.Scenario(
                f"POST /ai/query, {'cache miss' if cache else 'unique prompts'}, with token",
                "POST",
                "/ai/query",
                '{"prompt": "Run {run}: what is {n}+1?"}',
                JSON,
                tuple(others),
            ),
        ]
    return [
        load.Scenario("GET /health", "GET", "/health"),
        load.Scenario(
            f"POST /ai/query, {'cache hit' if cache else 'same prompt'}",
            "POST",
            "/ai/query",
            '{"user_id": "bench-{run}-{user}", "prompt": "What is 2+2?"}',
            JSON,
        ),
        load.Scenario(
            f"POST /ai/query, {'cache miss' if cache else 'unique prompts'}",
            "POST",
            "/ai/query",
            '{"user_id": "bench-{run}-{user}", "prompt": "Run {run}: what is {n}+1?"}',
            JSON,
        ),
    ]


def is_query_target(project: str, scenario: str) -> bool:
    if project == "all-off":
        return scenario.startswith("POST /ai/query")
    return "cache hit" in scenario


class Cursor:
    """Where each scenario's request counter goes on from, so that successive runs of a
    scenario rotate on through its users instead of starting again at the first."""

    def __init__(self) -> None:
        self.next: dict[tuple[str, str], int] = {}

    def run(
        self, tool: str, service: Service, scenario: load.Scenario, c: int, seconds: float
    ) -> load.LoadResult:
        key = (service.name, scenario.name)
        result = load.run(tool, service.url, scenario, c, seconds, first=self.next.get(key, 0))
        self.next[key] = self.next.get(key, 0) + result.requests + c
        return result


CURSOR = Cursor()


def measure(
    tool: str,
    plan: list[tuple[Service, list[load.Scenario]]],
    connections: list[int],
    seconds: float,
    repeats: int,
) -> list[dict[str, Any]]:
    """Every point `repeats` times, interleaved; each row is the run with the median req/s."""
    samples: dict[tuple[str, str, int], list[dict[str, Any]]] = {}
    for repeat in range(repeats):
        for c in connections:
            for service, endpoints in plan:
                for scenario in endpoints:
                    if repeat == 0:
                        CURSOR.run(tool, service, scenario, c, 1)  # warm-up, not recorded
                    before = os.getloadavg()[0]
                    cpu = service.cpu_seconds()
                    result = CURSOR.run(tool, service, scenario, c, seconds)
                    cpu = service.cpu_seconds() - cpu
                    samples.setdefault((service.name, scenario.name, c), []).append(
                        {
                            "project": service.project or "bare",
                            "load_average_before": round(before, 2),
                            **result.as_dict(),
                            "cpu_ms_per_request": round(1000 * cpu / max(result.requests, 1), 3),
                            "server_cpu_share": round(cpu / result.seconds, 2),
                        }
                    )
                    print(
                        f"  [{repeat + 1}/{repeats}] {service.name:19} {scenario.name:50} c={c:<3}"
                        f" {result.rps:9.1f} req/s  p50 {result.p50_ms:7.2f} ms"
                        f"  p99 {result.p99_ms:7.2f} ms"
                        + (f"  non-2xx {result.non_2xx}" if result.non_2xx else ""),
                        flush=True,
                    )
    rows = []
    for (service, endpoint, _c), runs in samples.items():
        ordered = sorted(runs, key=lambda r: r["rps"])
        rows.append(
            {
                "service": service,
                "endpoint": endpoint,
                **ordered[len(ordered) // 2],
                "rps_runs": [r["rps"] for r in runs],
                "p99_runs": [r["p99_ms"] for r in runs],
            }
        )
    rows.sort(key=lambda r: r["connections"])
    bare = {row["connections"]: row for row in rows if row["service"] == "bare"}
    for row in rows:
        ceiling = bare[row["connections"]]
        row["rps_ratio"] = round(row["rps"] / ceiling["rps"], 3)
        row["p50_ratio"] = round(row["p50_ms"] / max(ceiling["p50_ms"], 1e-3), 2)
        row["p99_ratio"] = round(row["p99_ms"] / max(ceiling["p99_ms"], 1e-3), 2)
        row["valid"] = (row["non_2xx"] + row["socket_errors"]) <= 0.01 * max(row["requests"], 1)
        # CPU cost per request relative to the bare endpoint's: what the req/s ratio would be
        # with a core to itself, and much less swayed by other work on the machine.
        row["cpu_ratio"] = round(
            ceiling["cpu_ms_per_request"] / max(row["cpu_ms_per_request"], 1e-6), 3
        )
    return rows


def targets(rows: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    checks = []
    for row in rows:
        if row["service"] == "bare":
            continue
        share = TARGET_QUERY_SHARE.get(row["project"])
        if share is not None and is_query_target(row["project"], row["endpoint"]):
            checks.append(
                {
                    "service": row["service"],
                    "endpoint": row["endpoint"],
                    "connections": row["connections"],
                    "target": f"requests/s >= {share:.0%} of bare",
                    "value": f"{row['rps_ratio']:.0%}",
                    "met": row["rps_ratio"] >= share,
                }
            )
        if row["connections"] == top:
            checks.append(
                {
                    "service": row["service"],
                    "endpoint": row["endpoint"],
                    "connections": row["connections"],
                    "target": f"p99 < {TARGET_P99_MS:.0f} ms",
                    "value": f"{row['p99_ms']:.1f} ms",
                    "met": row["p99_ms"] < TARGET_P99_MS,
                }
            )
    return checks


def profile_misses(
    tool: str,
    checks: list[dict[str, Any]],
    plan: list[tuple[Service, list[load.Scenario]]],
    packages: dict[str, str],
    connections: int,
    seconds: float,
    everything: bool,
) -> list[dict[str, Any]]:
    missed = {(c["service"], c["endpoint"]) for c in checks if everything or not c["met"]}
    profiles = []
    for service, endpoints in plan:
        for scenario in endpoints:
            if (service.name, scenario.name) not in missed:
                continue
            slug = re.sub(r"[^a-z0-9]+", "-", f"{service.name} {scenario.name}".lower()).strip("-")
            output = RESULTS_DIR / "profiles" / f"{slug}.txt"
            output.parent.mkdir(parents=True, exist_ok=True)
            output.unlink(missing_ok=True)
            sampler = profiling.record(service.pid, seconds, output)
            time.sleep(0.3)
            CURSOR.run(tool, service, scenario, connections, seconds)
            _, errors = sampler.communicate(timeout=seconds + 60)
            if not output.exists():
                print(f"py-spy failed on {service.name}: {errors.decode()[-500:]}", file=sys.stderr)
                continue
            summary = profiling.summarize(output.read_text(), packages.get(service.name))
            title = f"{service.name} {scenario.name} at {connections} connections"
            print()
            print(profiling.text_report(summary, title))
            profiles.append(
                {
                    "raw": relative(output),
                    "service": service.name,
                    "endpoint": scenario.name,
                    "connections": connections,
                    **summary,
                }
            )
    return profiles


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=5, help="measured seconds per point")
    parser.add_argument("--repeats", type=int, default=3, help="runs per point (median kept)")
    parser.add_argument("--connections", default="1,16,64", help="comma-separated")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--projects", default="all-off,all-on", help="comma-separated")
    parser.add_argument(
        "--databases",
        default="sqlite,postgres",
        help="user databases to run an auth project with, comma-separated (sqlite: a file, "
        "the project's default; postgres: a new database on the local server)",
    )
    parser.add_argument(
        "--profile",
        choices=["auto", "always", "never"],
        default="auto",
        help="py-spy the endpoints that miss a target (auto), all, or none",
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL for the services")
    args = parser.parse_args()

    tool = load.default_tool() if args.load == "auto" else args.load
    connections = [int(c) for c in args.connections.split(",")]
    wanted = [p.strip() for p in args.projects.split(",") if p.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    check_redis()
    warn_if_busy()
    print(f"load generator: {tool}; {args.seconds:g} s per point; connections {connections}")

    with tempfile.TemporaryDirectory(prefix="service-cost-") as tmp:
        workdir = Path(tmp)
        logs = workdir / "logs"
        logs.mkdir()
        projects, skipped = build_projects(wanted, workdir)
        backing = Backing(workdir)
        services: list[Service] = []
        try:
            services.append(start_bare(projects["all-off"].python, workdir, logs))
            for project, database in variants(projects, wanted, databases):
                try:
                    services.append(start_project(project, backing, logs, args.log_level, database))
                except (RuntimeError, subprocess.CalledProcessError) as error:
                    skipped[f"{project.name} ({database})"] = str(error).splitlines()[0]
                    print(f"  {project.name} ({database}) did not start: {error}", file=sys.stderr)
            with running(*services):
                plan = [(services[0], [load.Scenario("GET / (bare)", "GET", "/")])]
                plan += [(s, scenarios(projects[s.project], s)) for s in services[1:]]
                rss_idle = {s.name: s.rss_mib() for s in services}
                rows = measure(tool, plan, connections, args.seconds, args.repeats)
                checks = targets(rows, max(connections))
                profiles: list[dict[str, Any]] = []
                if args.profile != "never":
                    profiles = profile_misses(
                        tool,
                        checks,
                        plan[1:],
                        {s.name: projects[s.project].package for s in services[1:]},
                        max(connections),
                        max(args.seconds, 5),
                        args.profile == "always",
                    )
        finally:
            backing.cleanup()

    report = {
        "benchmark": "service_cost",
        "machine": machine(),
        "load_generator": tool,
        "seconds_per_point": args.seconds,
        "repeats": args.repeats,
        "log_level": args.log_level,
        "databases": databases,
        "skipped": skipped,
        "rss_idle_mib": rss_idle,
        "rows": rows,
        "targets": checks,
        "profiles": profiles,
    }
    print_tables(report)
    json_path = write_json("service_cost.json", report)
    chart_path = chart(report)
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    return 0


def print_tables(report: dict[str, Any]) -> None:
    print()
    print(
        table(
            [
                "service",
                "endpoint",
                "conns",
                "req/s",
                "p50 ms",
                "p99 ms",
                "req/s vs bare",
                "p50 vs bare",
                "p99 vs bare",
                "CPU ms/req",
                "CPU vs bare",
                "non-2xx",
            ],
            [
                [
                    r["service"],
                    r["endpoint"],
                    r["connections"],
                    r["rps"],
                    r["p50_ms"],
                    r["p99_ms"],
                    f"{r['rps_ratio']:.0%}",
                    f"{r['p50_ratio']:.1f}x",
                    f"{r['p99_ratio']:.1f}x",
                    r["cpu_ms_per_request"],
                    f"{r['cpu_ratio']:.0%}",
                    r["non_2xx"] + r["socket_errors"],
                ]
                for r in report["rows"]
            ],
        )
    )
    print()
    print(
        table(
            ["service", "endpoint", "conns", "target", "measured", "met"],
            [
                [
                    c["service"],
                    c["endpoint"],
                    c["connections"],
                    c["target"],
                    c["value"],
                    "yes" if c["met"] else "NO",
                ]
                for c in report["targets"]
            ],
        )
    )
    if report["skipped"]:
        print("\nnot measured: " + json.dumps(report["skipped"]))


def chart(report: dict[str, Any]) -> Path:
    plt = pyplot()
    rows = report["rows"]
    connections = sorted({r["connections"] for r in rows})
    groups = list(dict.fromkeys((r["service"], r["endpoint"]) for r in rows))
    by_key = {(r["service"], r["endpoint"], r["connections"]): r for r in rows}
    project_of = {r["service"]: r["project"] for r in rows}
    colors = ["#c6dbef", "#6baed6", "#2171b5", "#08306b"]
    figure, (top, bottom) = plt.subplots(
        2, 1, figsize=(9, 2.2 + 0.55 * len(groups) * 2), height_ratios=[1, 1], sharex=False
    )
    height = 0.8 / len(connections)
    labels = [f"{service}: {endpoint}" for service, endpoint in groups]
    for i, c in enumerate(connections):
        ys = [g + (i - (len(connections) - 1) / 2) * height for g in range(len(groups))]
        ratios = [100 * by_key[(s, e, c)]["rps_ratio"] for s, e in groups]
        cpu_ratios = [100 * by_key[(s, e, c)].get("cpu_ratio", 0) for s, e in groups]
        p99s = [by_key[(s, e, c)]["p99_ms"] for s, e in groups]
        color = colors[min(i + (4 - len(connections)), 3)]
        top.barh(ys, ratios, height, label=f"{c} connection{'s' if c > 1 else ''}", color=color)
        top.scatter(
            cpu_ratios,
            ys,
            marker="|",
            s=40,
            color="black",
            zorder=3,
            label="ratio of CPU time per request" if i == 0 else None,
        )
        bottom.barh(ys, p99s, height, color=color)
        for y, ratio, s_e in zip(ys, ratios, groups, strict=True):
            rps = by_key[(*s_e, c)]["rps"]
            top.text(ratio, y, f" {ratio:.0f}% ({rps:,.0f}/s)", va="center", fontsize=7)
        for y, p99 in zip(ys, p99s, strict=True):
            bottom.text(p99, y, f" {p99:.1f}", va="center", fontsize=7)
    for ax in (top, bottom):
        ax.set_yticks(range(len(groups)), labels)
        ax.invert_yaxis()
    marked = False
    for g, (service, endpoint) in enumerate(groups):
        share = TARGET_QUERY_SHARE.get(project_of[service])
        if share is not None and is_query_target(project_of[service], endpoint):
            top.plot(
                [100 * share] * 2,
                [g - 0.48, g + 0.48],
                color="#c44e52",
                linewidth=2,
                label=None if marked else "target share",
            )
            marked = True
    top.set_xlim(0, 130)
    top.set_xlabel("requests/s as % of the bare FastAPI endpoint at the same connection count")
    top.legend(loc="lower right", fontsize=7)
    bottom.axvline(TARGET_P99_MS, color="#c44e52", linestyle="--", linewidth=1)
    bottom.text(
        TARGET_P99_MS,
        len(groups) - 0.4,
        " target: p99 < 50 ms at 64 connections",
        color="#c44e52",
        fontsize=7,
        va="top",
    )
    bottom.set_xscale("log")
    bottom.set_xlabel("p99 latency, ms (log scale)")
    bottom.set_xlim(min(r["p99_ms"] for r in rows) / 1.5, max(r["p99_ms"] for r in rows) * 3)
    top.set_title(
        f"Service cost vs a bare FastAPI app ({report['load_generator']}, "
        f"{report['seconds_per_point']:g} s per point, one uvicorn worker)"
    )
    figure.tight_layout()
    return save_chart(figure, "service_cost.png")


if __name__ == "__main__":
    sys.exit(main())
