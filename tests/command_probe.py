"""Run by a rendered project's own interpreter for commands.py: in one process, so the app is
imported once, each script with `--help`, the project's CLI with `--help`, and the app's routes.

    python command_probe.py '{"package": ..., "scripts": [...], "cli": true, "routes": true}'

Prints one JSON object: the exit status (or the exception) of each script, the CLI's help text,
and the paths the app serves.
"""

import contextlib
import io
import json
import runpy
import sys
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any


def run_with_help(argv0: str, call: Any) -> tuple[object, str]:
    """The exit status of `call()` with argv `[argv0, "--help"]`, and what it printed."""
    sys.argv = [argv0, "--help"]
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            call()
    except SystemExit as stop:
        return stop.code or 0, printed.getvalue()
    except Exception as error:  # reported, not raised: the next script still runs
        return repr(error), printed.getvalue()
    return 0, printed.getvalue()


def main(tasks: dict[str, Any]) -> dict[str, Any]:
    package = tasks["package"]
    results: dict[str, Any] = {"scripts": {}}
    for script in tasks["scripts"]:
        status, _ = run_with_help(script, lambda s=script: runpy.run_path(s, run_name="__main__"))
        results["scripts"][script] = status
    if tasks["cli"]:
        (entry,) = entry_points(group="console_scripts", name=package)
        status, printed = run_with_help(package, lambda: sys.exit(entry.load()()))
        results["cli"] = printed if status == 0 else ""
    if tasks["routes"]:
        app = import_module(f"{package}.main").create_app()
        served = [getattr(route, "path", "") for route in app.routes]
        results["routes"] = [*app.openapi()["paths"], *served]
    return results


if __name__ == "__main__":
    print(json.dumps(main(json.loads(sys.argv[1]))))
