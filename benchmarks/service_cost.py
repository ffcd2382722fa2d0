"""Service cost: what the rendered service gives away to its plumbing, against a bare ceiling.

    uv run --group bench python benchmarks/service_cost.py

Renders the all-off and all-on projects, builds each with `uv sync --no-dev --compile-bytecode`
(bytecode as the image has it), and starts them and a bare FastAPI app (one endpoint
returning a small JSON object, in the all-off project's environment: the same FastAPI,
uvicorn and uvloop) under the same uvicorn settings: one worker on 127.0.0.1 pinned to core 0,
no access log, the embedded PRSM engine, the local Redis; all-on runs twice, its users in a
SQLite file (the project's default) and in a new database on the local PostgreSQL
(`--databases`). The services log at LOG_LEVEL=INFO (their default) to a file.

Each endpoint is driven by wrk (when installed, else a bounded asyncio client: `--load`) on
core 1 at `--connections` (64) for `--seconds` each after a one-second warm-up: `/health`,
an `/ai/query` asked again and again (a cache hit when the cache is on), an `/ai/query` with
a unique prompt every time (a miss), and on all-on `/auth/me`, every request with a bearer
token. Each point starts once every service is idle: one that wrk overloaded still answers
what it had read when wrk stopped, on the core the next point's server uses. Each row is also
given as a ratio to the bare endpoint at the same connection count in the same run, and as CPU
time per request.

Then, on all-on with PostgreSQL: process start to the first 200 from `/health/ready`
(`--startup-runs` times), and the cache hit with one worker and with WEB_CONCURRENCY=2 (wrk
and the server unpinned), checking that /metrics counts every request of the two workers.

The targets (TARGETS below, issue 14) are checked in the same run. Endpoints that miss one
are sampled with py-spy under the same load (`--profile auto`) and the report says where the
CPU time goes. Writes benchmarks/results/service_cost.json and service_cost.png.
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
from dataclasses import dataclass
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
    http,
    running,
    settle,
    start,
    start_bare,
    start_project,
    variants,
)

JSON = {"Content-Type": "application/json"}


@dataclass(frozen=True)
class ShareTarget:
    """requests/s at least `share` of the bare app's, for these rows."""

    project: str
    endpoint: str  # the start of the endpoint's name
    databases: tuple[str, ...]  # "" for a project without auth
    share: float

    def covers(self, row: dict[str, Any]) -> bool:
        return (
            row["project"] == self.project
            and row["endpoint"].startswith(self.endpoint)
            and row.get("database", "") in self.databases
        )


# Issue 14's targets, at the highest connection count measured.
TARGETS = (
    ShareTarget("all-off", "GET /health", ("",), 0.70),
    ShareTarget("all-off", "POST /ai/query", ("",), 0.40),
    ShareTarget("all-on", "POST /ai/query, cache hit", ("sqlite", "postgres"), 0.25),
    ShareTarget("all-on", "POST /ai/query, cache miss", ("postgres",), 0.10),
)
# p99 at most this for the all-off query and the all-on hit, and at most P99_PER_P50 times the
# median everywhere.
TARGET_P99_MS = 50.0
P99_PER_P50 = 3.0
TARGET_STARTUP_SECONDS = 1.0
TARGET_WORKERS_SPEEDUP = 1.7


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
    everyone = [service for service, _ in plan]
    for repeat in range(repeats):
        for c in connections:
            for service, endpoints in plan:
                for scenario in endpoints:
                    if repeat == 0:
                        CURSOR.run(tool, service, scenario, c, 1)  # warm-up, not recorded
                    # Each point starts on services that are done with the one before.
                    settled = settle(everyone)
                    before = os.getloadavg()[0]
                    cpu = service.cpu_seconds()
                    result = CURSOR.run(tool, service, scenario, c, seconds)
                    cpu = service.cpu_seconds() - cpu
                    samples.setdefault((service.name, scenario.name, c), []).append(
                        {
                            "project": service.project or "bare",
                            "database": service.database,
                            "load_average_before": round(before, 2),
                            "settle_seconds": round(settled, 2),
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


def share_target(row: dict[str, Any]) -> ShareTarget | None:
    return next((target for target in TARGETS if target.covers(row)), None)


def wants_low_p99(row: dict[str, Any]) -> bool:
    """The all-off query and the all-on cache hit: p99 under TARGET_P99_MS."""
    if row["project"] == "all-off":
        return row["endpoint"].startswith("POST /ai/query")
    return row["project"] == "all-on" and "cache hit" in row["endpoint"]


def targets(rows: list[dict[str, Any]], top: int) -> list[dict[str, Any]]:
    checks = []

    def check(row: dict[str, Any], target: str, value: str, met: bool) -> None:
        checks.append(
            {
                "service": row["service"],
                "endpoint": row["endpoint"],
                "connections": row["connections"],
                "target": target,
                "value": value,
                "met": met,
            }
        )

    for row in rows:
        if row["service"] == "bare" or row["connections"] != top:
            continue
        share = share_target(row)
        if share is not None:
            check(
                row,
                f"requests/s >= {share.share:.0%} of bare",
                f"{row['rps_ratio']:.1%}",
                row["rps_ratio"] >= share.share,
            )
        if wants_low_p99(row):
            check(
                row,
                f"p99 <= {TARGET_P99_MS:.0f} ms",
                f"{row['p99_ms']:.1f} ms",
                row["p99_ms"] <= TARGET_P99_MS,
            )
        spread = row["p99_ms"] / max(row["p50_ms"], 1e-3)
        check(row, f"p99 <= {P99_PER_P50:g} x p50", f"{spread:.1f} x", spread <= P99_PER_P50)
    return checks


def startup(
    project: Project, backing: Backing, logs: Path, log_level: str, runs: int
) -> dict[str, Any]:
    """Seconds from starting the all-on service (PostgreSQL users) to its first 200 from
    /health/ready, asked every 10 ms: imports, settings, the lifespan, every readiness probe."""
    env = backing.env_for(project, log_level, "postgres")
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        service = start(
            "all-on start-up",
            project.python,
            f"{project.package}.main:create_app",
            project.path,
            env,
            "/health/ready",
            logs,
            poll_seconds=0.01,
        )
        seconds.append(time.perf_counter() - started)
        service.stop()
    median = sorted(seconds)[len(seconds) // 2]
    each = ", ".join(f"{s:.3f}" for s in seconds)
    print(f"  start-up to ready: median {median:.3f} s of {runs} ({each})")
    return {"runs": [round(s, 3) for s in seconds], "median_s": round(median, 3)}


METRICS_LINE = re.compile(r"^http_requests_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$", re.M)


def requests_counted(service: Service, handler: str) -> float:
    """What the service's /metrics says it answered on `handler`, every worker's included."""
    status, body = http(service.url + "/metrics")
    if status != 200:
        raise RuntimeError(f"/metrics answered {status}")
    return sum(
        float(match["value"])
        for match in METRICS_LINE.finditer(body.decode())
        if f'handler="{handler}"' in match["labels"]
    )


def workers(
    tool: str,
    project: Project,
    backing: Backing,
    logs: Path,
    log_level: str,
    connections: int,
    seconds: float,
    repeats: int,
) -> dict[str, Any]:
    """The all-on cache hit on one worker and on two (WEB_CONCURRENCY=2), both unpinned and
    wrk unpinned, runs interleaved; the speedup is the median of each pair's ratio. And
    /metrics against what wrk got answered on two."""
    one = start_project(project, backing, logs, log_level, "postgres", pinned=False)
    two = start_project(project, backing, logs, log_level, "postgres", workers=2)
    rps: dict[int, list[float]] = {1: [], 2: []}
    counted: list[dict[str, float]] = []
    with running(one, two):
        hit = {s.workers: scenarios(project, s)[2] for s in (one, two)}
        for service in (one, two):
            load.run(tool, service.url, hit[service.workers], connections, 1, pinned=False)
        for _ in range(repeats):
            for service in (one, two):
                before = requests_counted(two, "/ai/query") if service is two else 0.0
                result = load.run(
                    tool, service.url, hit[service.workers], connections, seconds, pinned=False
                )
                rps[service.workers].append(result.rps)
                if service is two:
                    time.sleep(0.5)  # a request wrk gave up on at the end may still be counted
                    counted.append(
                        {
                            "answered": result.requests,
                            "counted": requests_counted(two, "/ai/query") - before,
                        }
                    )
                print(
                    f"  workers={service.workers}: {result.rps:9.1f} req/s"
                    f"  p99 {result.p99_ms:7.2f} ms"
                )
    median = {n: sorted(values)[len(values) // 2] for n, values in rps.items()}
    # Each two-worker run against the one-worker run just before it: a machine whose speed
    # drifts over the minutes of the comparison moves both alike.
    ratios = sorted(two / one for one, two in zip(rps[1], rps[2], strict=True))
    # Every request wrk saw answered is counted; at most the ones in flight when it stopped more.
    totals_right = all(
        c["answered"] <= c["counted"] <= c["answered"] + connections for c in counted
    )
    return {
        "rps_runs": rps,
        "rps": median,
        "speedup": round(ratios[len(ratios) // 2], 2),
        "speedup_runs": [round(ratio, 2) for ratio in ratios],
        "metrics": counted,
        "metrics_totals_right": totals_right,
    }


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
    parser.add_argument(
        "--connections", default="64", help="comma-separated; the targets are read at the last"
    )
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
    parser.add_argument(
        "--startup-runs", type=int, default=5, help="starts of all-on timed to ready (0: none)"
    )
    parser.add_argument(
        "--no-workers", action="store_true", help="skip the one-worker/two-worker comparison"
    )
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
            # The rest wants the machine to itself: every service measured above is stopped.
            started: dict[str, Any] = {}
            several: dict[str, Any] = {}
            all_on = projects.get("all-on")
            if all_on is not None and "postgres" in databases:
                if args.startup_runs:
                    print("all-on (PostgreSQL): start-up to ready ...", flush=True)
                    started = startup(all_on, backing, logs, args.log_level, args.startup_runs)
                if not args.no_workers:
                    print("all-on (PostgreSQL): one worker against two ...", flush=True)
                    several = workers(
                        tool,
                        all_on,
                        backing,
                        logs,
                        args.log_level,
                        max(connections),
                        args.seconds,
                        # Pairs of runs: the ratio of two noisy figures needs more of them.
                        max(args.repeats, 7),
                    )
        finally:
            backing.cleanup()
        checks += process_targets(started, several)

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
        "startup": started,
        "workers": several,
        "targets": checks,
        "profiles": profiles,
    }
    print_tables(report)
    json_path = write_json("service_cost.json", report)
    chart_path = chart(report)
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    return 0


def process_targets(started: dict[str, Any], several: dict[str, Any]) -> list[dict[str, Any]]:
    """The start-up and several-worker targets, for what was measured."""
    checks = []
    service = "all-on (PostgreSQL)"
    if started:
        checks.append(
            {
                "service": service,
                "endpoint": "start to first 200 on /health/ready",
                "connections": 0,
                "target": f"<= {TARGET_STARTUP_SECONDS:g} s",
                "value": f"{started['median_s']:.2f} s",
                "met": started["median_s"] <= TARGET_STARTUP_SECONDS,
            }
        )
    if several:
        checks.append(
            {
                "service": service,
                "endpoint": "POST /ai/query, cache hit, WEB_CONCURRENCY=2",
                "connections": 0,
                "target": f">= {TARGET_WORKERS_SPEEDUP:g} x one worker, /metrics counts all",
                "value": f"{several['speedup']:.2f} x, counts "
                + ("right" if several["metrics_totals_right"] else "WRONG"),
                "met": several["speedup"] >= TARGET_WORKERS_SPEEDUP
                and several["metrics_totals_right"],
            }
        )
    return checks


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
        share = share_target(by_key[(service, endpoint, connections[-1])])
        if share is not None:
            top.plot(
                [100 * share.share] * 2,
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
        f" target: p99 <= {TARGET_P99_MS:.0f} ms (all-off query, all-on hit)",
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
