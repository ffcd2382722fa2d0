"""Run by a rendered project's own interpreter for commands.py: every command of the plan, in
its order, and then the paths the app serves.

    python command_probe.py PLAN.json

PLAN.json: `{"package": ..., "runs": [{"argv": [...], "variables": {...}, "stdin": ...,
"purpose": ...}], "routes": true}` (the purpose is commands.py's, to read the report by).
`argv` starts with a program of the project's environment (what `uv run` would start:
`.venv/bin/<program>`) or with `python`. Prints one JSON object: for each run its exit
status (or why it has none), what it wrote and its seconds, and the app's paths.

The app's package is imported once, here, and each run without variables of its own becomes
a child of this process (`os.fork`): the program's own file runs as `__main__` with the
command's arguments and standard input, in a process of its own that only starts with those
modules imported, as they would be imported in a new one (same interpreter, directory and
environment). That saves each command the seconds of importing FastAPI, SQLAlchemy and the
app again. A run with variables, which could change what an import does, and a program that
is not a Python script get a new process instead, as does everything if importing the app
left a thread running (a fork copies only the thread that forks).
"""

import json
import os
import runpy
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from importlib import import_module
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 180
OUTPUT_CHARS = 20_000


def program_path(program: str) -> Path:
    """What `uv run PROGRAM` starts: the environment's own interpreter or script."""
    if program == "python":
        return Path(sys.executable)
    return Path(sys.prefix, "bin", program)


def is_python_script(path: Path) -> bool:
    with path.open("rb") as file:
        first = file.readline()
    return first.startswith(b"#!") and b"python" in first


def read_output(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace")
    return text[-OUTPUT_CHARS:]


def run_in_new_process(argv: list[str], variables: dict[str, str], stdin: str | None) -> dict:
    try:
        done = subprocess.run(
            [str(program_path(argv[0])), *argv[1:]],
            env={**os.environ, **variables},
            input=stdin if stdin is not None else "",
            capture_output=True,
            text=True,
            timeout=TIMEOUT_SECONDS,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return {"status": f"still running after {TIMEOUT_SECONDS} s", "stdout": "", "stderr": ""}
    return {
        "status": done.returncode,
        "stdout": done.stdout[-OUTPUT_CHARS:],
        "stderr": done.stderr[-OUTPUT_CHARS:],
    }


def become(argv: list[str], stdin: Path, stdout: Path, stderr: Path) -> int:
    """In the forked child: run the command's program as `__main__`; its exit status."""
    signal.alarm(TIMEOUT_SECONDS)  # SIGALRM's default action ends a command that hangs
    for fd, path, flags in (
        (0, stdin, os.O_RDONLY),
        (1, stdout, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
        (2, stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC),
    ):
        opened = os.open(path, flags, 0o644)
        os.dup2(opened, fd)
        os.close(opened)
    program, args = argv[0], argv[1:]
    try:
        if program == "python" and args[:1] == ["-m"]:
            # As `python -m`: argv[0] becomes the module's file, the directory leads sys.path.
            sys.argv = ["-m", *args[2:]]
            sys.path.insert(0, os.getcwd())
            runpy.run_module(args[1], run_name="__main__", alter_sys=True)
        else:
            script = args[0] if program == "python" else str(program_path(program))
            rest = args[1:] if program == "python" else args
            sys.argv = [script, *rest]
            sys.path.insert(0, str(Path(script).resolve().parent))
            runpy.run_path(script, run_name="__main__")
        status = 0
    except SystemExit as stop:
        status = exit_status(stop.code)
    except BaseException:
        traceback.print_exc()
        status = 1
    # The child leaves by os._exit, as multiprocessing's do: the atexit handlers this process
    # registered (its temporary directory's clean-up among them) are not the command's, and
    # none can change its exit status.
    sys.stdout.flush()
    sys.stderr.flush()
    return status


def exit_status(code: object) -> int:
    """The status `sys.exit(code)` ends a Python process with."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def run_in_fork(argv: list[str], stdin: str | None, scratch: Path) -> dict:
    given = scratch / "stdin"
    given.write_text(stdin or "", encoding="utf-8")
    stdout, stderr = scratch / "stdout", scratch / "stderr"
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 70
        try:
            status = become(argv, given, stdout, stderr)
        finally:
            os._exit(status)
    _, wait_status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(wait_status)
    result: dict[str, Any] = {"stdout": read_output(stdout), "stderr": read_output(stderr)}
    if code == -signal.SIGALRM:
        result["status"] = f"still running after {TIMEOUT_SECONDS} s"
    else:
        result["status"] = code
    return result


def run(command: dict[str, Any], forking: bool, scratch: Path) -> dict:
    argv, variables, stdin = command["argv"], command["variables"], command["stdin"]
    path = program_path(argv[0])
    if not path.is_file():
        status = f"{argv[0]} is not in the project's environment"
        return {"status": status, "stdout": "", "stderr": ""}
    python = argv[0] == "python" or is_python_script(path)
    if forking and python and not variables:
        return run_in_fork(argv, stdin, scratch)
    return run_in_new_process(argv, variables, stdin)


def main(plan: dict[str, Any]) -> dict[str, Any]:
    started = time.perf_counter()
    package = plan["package"]
    # sys.path[0] is this script's directory, the template's tests/, which no command
    # would see: each child puts its own first, as a new interpreter would.
    sys.path.pop(0)
    results: dict[str, Any] = {"runs": []}
    try:
        app_module = import_module(f"{package}.main")
    except Exception:  # reported; the commands still run, each in a new process
        results["import_error"] = traceback.format_exc()[-OUTPUT_CHARS:]
        app_module = None
    forking = app_module is not None and threading.active_count() == 1
    results["forked"] = forking
    results["import_seconds"] = round(time.perf_counter() - started, 3)
    with tempfile.TemporaryDirectory(prefix="command-probe-") as scratch:
        for command in plan["runs"]:
            begun = time.perf_counter()
            result = run(command, forking, Path(scratch))
            results["runs"].append({**result, "seconds": round(time.perf_counter() - begun, 3)})
    if plan["routes"] and app_module is not None:
        app = app_module.create_app()
        served = [getattr(route, "path", "") for route in app.routes]
        results["routes"] = [*app.openapi()["paths"], *served]
    return results


if __name__ == "__main__":
    print(json.dumps(main(json.loads(Path(sys.argv[1]).read_text(encoding="utf-8")))))
