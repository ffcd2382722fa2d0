"""Memory: resident memory of each service at idle and after 100 000 requests.

    uv run --group bench python benchmarks/service_memory.py [--requests 100000]

Starts the bare app and the all-off and all-on services exactly as service_cost.py does,
reads each one's RSS (/proc/PID/status VmRSS) once it is up and idle, then drives it with
its own endpoints in turn (the bare one, /health, /auth/me, the repeated and the
unique-prompt /ai/query), about `--chunk-requests` requests each per turn at `--connections`
connections, reading RSS after every turn, until it has served `--requests` requests or
`--max-seconds` passed.

Growth is measured from the end of the first round (every endpoint served once: lazy imports,
pools and caches filled) to the end; it counts as noise below max(2 MiB, 3%).
Writes benchmarks/results/service_memory.json and service_memory.png.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import load
from common import machine, pyplot, relative, save_chart, table, warn_if_busy, write_json
from service_cost import Cursor, scenarios
from services import (
    Backing,
    Service,
    build_projects,
    check_redis,
    running,
    start_bare,
    start_project,
    variants,
)

NOISE_MIB = 2.0
NOISE_SHARE = 0.03


def drive(
    tool: str, service: Service, endpoints: list[load.Scenario], args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Turns of about `--chunk-requests` requests per endpoint, round robin, until
    `--requests` or `--max-seconds`; RSS after each turn. wrk runs for a time, not a count,
    so each endpoint's first turn (one second) measures its rate and later turns last
    `chunk_requests / rate` seconds: every endpoint gets about the same share of requests."""
    cursor = Cursor()
    time.sleep(2)
    readings = [{"requests": 0, "rss_mib": service.rss_mib(), "endpoint": "idle"}]
    rates: dict[str, float] = {}
    served = 0
    started = time.monotonic()
    turn = 0
    while served < args.requests and time.monotonic() - started < args.max_seconds:
        scenario = endpoints[turn % len(endpoints)]
        turn += 1
        rate = rates.get(scenario.name)
        seconds = 1.0 if rate is None else min(max(args.chunk_requests / rate, 1.0), 30.0)
        result = cursor.run(tool, service, scenario, args.connections, seconds)
        rates[scenario.name] = max(result.rps, 1.0)
        served += result.requests
        readings.append(
            {
                "requests": served,
                "rss_mib": service.rss_mib(),
                "endpoint": scenario.name,
                "non_2xx": result.non_2xx + result.socket_errors,
            }
        )
        print(
            f"  {service.name:16} {served:>8,} requests  RSS {readings[-1]['rss_mib']:6.1f} MiB"
            f"  ({scenario.name}, {result.rps:,.0f}/s)",
            flush=True,
        )
    for reading in readings[1 : len(endpoints) + 1]:
        reading["warm_up"] = True
    return readings


def verdict(readings: list[dict[str, Any]], target: int) -> dict[str, Any]:
    """Growth from the end of the first round (every endpoint served once: lazy imports,
    pools and caches filled) to the last reading."""
    served = readings[-1]["requests"]
    warm = [r for r in readings[1:] if r.get("warm_up")][-1]
    after = readings[readings.index(warm) :]
    end = readings[-1]
    growth = round(end["rss_mib"] - warm["rss_mib"], 1)
    allowed = max(NOISE_MIB, NOISE_SHARE * warm["rss_mib"])
    return {
        "idle_mib": readings[0]["rss_mib"],
        "warm_mib": warm["rss_mib"],
        "warm_at_requests": warm["requests"],
        "end_mib": end["rss_mib"],
        "peak_mib": max(r["rss_mib"] for r in readings),
        "spread_after_warm_mib": round(
            max(r["rss_mib"] for r in after) - min(r["rss_mib"] for r in after), 1
        ),
        "requests": served,
        "growth_after_warm_mib": growth,
        "noise_limit_mib": round(allowed, 1),
        "flat": growth <= allowed,
        "complete": served >= target,
        "non_2xx": sum(r.get("non_2xx", 0) for r in readings),
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument(
        "--chunk-requests", type=int, default=5000, help="requests per endpoint per turn"
    )
    parser.add_argument("--max-seconds", type=float, default=600, help="per service")
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--projects", default="all-off,all-on", help="comma-separated")
    parser.add_argument(
        "--databases", default="sqlite", help="user databases for auth: sqlite,postgres"
    )
    parser.add_argument("--log-level", default="INFO", help="LOG_LEVEL for the services")
    parser.add_argument(
        "--name", default="service_memory", help="results file name (without .json/.png)"
    )
    args = parser.parse_args()

    tool = load.default_tool() if args.load == "auto" else args.load
    wanted = [p.strip() for p in args.projects.split(",") if p.strip()]
    databases = [d.strip() for d in args.databases.split(",") if d.strip()]
    check_redis()
    warn_if_busy()
    print(f"load generator: {tool}; {args.requests:,} requests per service")

    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="service-memory-") as tmp:
        workdir = Path(tmp)
        logs = workdir / "logs"
        logs.mkdir()
        projects, skipped = build_projects(wanted, workdir)
        backing = Backing(workdir)
        try:
            # One service at a time: each has the machine to itself while it is driven.
            bare = start_bare(projects["all-off"].python, workdir, logs)
            with running(bare):
                bare_endpoint = [load.Scenario("GET / (bare)", "GET", "/")]
                readings = drive(tool, bare, bare_endpoint, args)
                results["bare"] = {"readings": readings, **verdict(readings, args.requests)}
            for project, database in variants(projects, wanted, databases):
                try:
                    service = start_project(project, backing, logs, args.log_level, database)
                except (RuntimeError, subprocess.CalledProcessError) as error:
                    skipped[f"{project.name} ({database})"] = str(error).splitlines()[0]
                    continue
                with running(service):
                    readings = drive(tool, service, scenarios(project, service), args)
                    results[service.name] = {
                        "readings": readings,
                        **verdict(readings, args.requests),
                    }
        finally:
            backing.cleanup()

    rows = [
        [
            name,
            r["requests"],
            r["idle_mib"],
            r["warm_mib"],
            r["end_mib"],
            r["growth_after_warm_mib"],
            r["noise_limit_mib"],
            "flat" if r["flat"] else "GROWS",
            r["non_2xx"],
        ]
        for name, r in results.items()
    ]
    print()
    print(
        table(
            [
                "service",
                "requests",
                "idle MiB",
                "after round 1 MiB",
                "end MiB",
                "growth MiB",
                "noise MiB",
                "verdict",
                "non-2xx",
            ],
            rows,
        )
    )
    report = {
        "benchmark": "service_memory",
        "machine": machine(),
        "load_generator": tool,
        "connections": args.connections,
        "log_level": args.log_level,
        "databases": databases,
        "skipped": skipped,
        "services": results,
    }
    json_path = write_json(f"{args.name}.json", report)
    chart_path = chart(report, args.name)
    print(f"\nwrote {relative(json_path)} and {relative(chart_path)}")
    return 0


def chart(report: dict[str, Any], file_name: str) -> Path:
    plt = pyplot()
    figure, ax = plt.subplots(figsize=(7.5, 3.6))
    palette = ["#8c8c8c", "#4c72b0", "#dd8452", "#55a868", "#c44e52"]
    colors = dict(zip(report["services"], palette, strict=False))
    lowest = min(s["end_mib"] for s in report["services"].values())
    for name, result in report["services"].items():
        readings = result["readings"]
        xs = [r["requests"] / 1000 for r in readings]
        ys = [r["rss_mib"] for r in readings]
        ax.plot(xs, ys, marker=".", color=colors.get(name), label=name)
        ax.annotate(
            f"{ys[-1]:.1f} MiB ({result['growth_after_warm_mib']:+.1f} after round 1)",
            (xs[-1], ys[-1]),
            textcoords="offset points",
            # The lowest line is labelled below itself, the others above.
            xytext=(-4, -11 if result["end_mib"] == lowest else 6),
            ha="right",
            fontsize=7,
            color=colors.get(name),
        )
    ax.set_xlabel("requests served (thousands)")
    ax.set_ylabel("resident memory, MiB")
    top = max(r["rss_mib"] for s in report["services"].values() for r in s["readings"])
    ax.set_ylim(0, top * 1.18)
    ax.legend(loc="lower right", fontsize=8)
    ax.set_title("Resident memory while serving requests (one uvicorn worker)")
    ax.grid(axis="y", alpha=0.3)
    return save_chart(figure, f"{file_name}.png")


if __name__ == "__main__":
    sys.exit(main())
