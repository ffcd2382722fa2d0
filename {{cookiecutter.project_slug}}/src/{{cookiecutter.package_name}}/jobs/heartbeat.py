"""A job worker's sign of life, for a liveness probe that can tell a stuck worker.

With JOB_HEARTBEAT_FILE set, a worker touches that file every HEARTBEAT_INTERVAL_SECONDS from
a task of its own event loop, for as long as it listens to the job stream, and deletes it
when it stops. The file goes stale when the event loop is blocked (a job that calls
something synchronous which hangs) or when the worker stopped listening while its process
lives on: the cases a restart cures. Long jobs and a Redis outage do not stop it; the worker
goes on with those by itself, and a restart would not help.

The probe:

    python -m {{ cookiecutter.package_name }}.jobs.heartbeat --max-age 30

exits 0 while the file is younger than --max-age seconds, else 1 with the reason.
"""

import argparse
import asyncio
import os
import sys
import time
from pathlib import Path

HEARTBEAT_INTERVAL_SECONDS = 5.0


async def keep_beating(path: Path) -> None:
    """Touches `path` now and every HEARTBEAT_INTERVAL_SECONDS until cancelled, then deletes
    it: a worker that has stopped listening is not alive for the probe."""
    await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
    try:
        while True:
            await asyncio.to_thread(path.touch)
            await asyncio.sleep(HEARTBEAT_INTERVAL_SECONDS)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def problem(path: Path, max_age_seconds: float) -> str | None:
    """Why the worker behind `path` does not look alive, or None when it does."""
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return f"no heartbeat at {path}: the worker is not listening"
    if age > max_age_seconds:
        return f"heartbeat {path} is {age:.1f} s old, more than {max_age_seconds:g} s"
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m {{ cookiecutter.package_name }}.jobs.heartbeat",
        description="Exit 0 while the job worker's heartbeat file is fresh, else 1.",
    )
    parser.add_argument("--max-age", type=float, default=30.0, metavar="SECONDS")
    parser.add_argument(
        "--file",
        type=Path,
        default=os.environ.get("JOB_HEARTBEAT_FILE") or None,
        help="the heartbeat file (default: $JOB_HEARTBEAT_FILE)",
    )
    args = parser.parse_args(argv)
    if args.file is None:
        parser.error("no heartbeat file: set JOB_HEARTBEAT_FILE or pass --file")
    why = problem(args.file, args.max_age)
    if why:
        print(why, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
