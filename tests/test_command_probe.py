"""command_probe.py runs each command of a plan as a process of its own, forked from the one
that imported the app: the command's arguments, standard input and exit status are its own,
and nothing one command does reaches the next."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from commands import PROBE

SHOW = """\
import json, os, sys
import probe_app.main as app
print(json.dumps({"argv": sys.argv, "path0": sys.path[0], "stdin": sys.stdin.read(),
                  "seen": getattr(app, "seen", None), "pid": os.getpid()}))
app.seen = "set by an earlier command"
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else None)
"""


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A stand-in project: an importable `probe_app.main` and a script."""
    (tmp_path / "probe_app").mkdir()
    (tmp_path / "probe_app" / "__init__.py").write_text("")
    (tmp_path / "probe_app" / "main.py").write_text("import os\nPARENT = os.getpid()\n")
    (tmp_path / "scripts").mkdir()
    (tmp_path / "scripts" / "show.py").write_text(SHOW)
    return tmp_path


def probe(project: Path, *runs: dict[str, Any]) -> dict[str, Any]:
    plan = project / "plan.json"
    plan.write_text(json.dumps({"package": "probe_app", "runs": list(runs), "routes": False}))
    done = subprocess.run(
        [sys.executable, str(PROBE), str(plan)],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(project)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    report: dict[str, Any] = json.loads(done.stdout)
    return report


def command(*argv: str, stdin: str | None = None, **variables: str) -> dict[str, Any]:
    return {"argv": list(argv), "variables": variables, "stdin": stdin}


def test_a_forked_command_gets_its_arguments_input_and_status(project: Path) -> None:
    report = probe(project, command("python", "scripts/show.py", "3", stdin="a password\n"))

    assert report["forked"] is True
    (result,) = report["runs"]
    assert result["status"] == 3
    shown = json.loads(result["stdout"])
    assert shown["argv"] == ["scripts/show.py", "3"]
    assert shown["path0"] == str(project / "scripts")  # as `python scripts/show.py` has it
    assert shown["stdin"] == "a password\n"


def test_nothing_one_command_does_reaches_the_next(project: Path) -> None:
    show = command("python", "scripts/show.py")
    report = probe(project, show, show)

    first, second = (json.loads(result["stdout"]) for result in report["runs"])
    assert [result["status"] for result in report["runs"]] == [0, 0]
    assert first["pid"] != second["pid"]
    assert second["seen"] is None


def test_a_failing_command_reports_its_traceback(project: Path) -> None:
    (project / "broken.py").write_text("raise RuntimeError('the command broke')\n")

    (result,) = probe(project, command("python", "broken.py"))["runs"]

    assert result["status"] == 1
    assert "RuntimeError: the command broke" in result["stderr"]


def test_python_dash_m_runs_the_module_as_main(project: Path) -> None:
    (project / "probe_app" / "tool.py").write_text(
        "import sys\nprint(sys.argv)\nprint(sys.path[0])\n"
    )

    (result,) = probe(project, command("python", "-m", "probe_app.tool", "x"))["runs"]

    assert result["status"] == 0
    argv, path0 = result["stdout"].splitlines()
    assert argv == repr([str(project / "probe_app" / "tool.py"), "x"])
    assert path0 == str(project)


def test_a_command_with_variables_gets_a_new_process(project: Path) -> None:
    (project / "variables.py").write_text(
        "import os, sys\nprint(os.environ.get('PROBE_VARIABLE'), sys.argv[1:])\n"
    )

    (result,) = probe(project, command("python", "variables.py", "x", PROBE_VARIABLE="given"))[
        "runs"
    ]

    assert result["status"] == 0
    assert result["stdout"] == "given ['x']\n"


def test_a_program_outside_the_environment_is_reported(project: Path) -> None:
    (result,) = probe(project, command("no-such-program", "--help"))["runs"]

    assert result["status"] == "no-such-program is not in the project's environment"


def test_an_app_that_does_not_import_is_reported_and_commands_still_run(project: Path) -> None:
    (project / "probe_app" / "main.py").write_text("raise ImportError('no app here')\n")
    (project / "ok.py").write_text("print('ran')\n")

    report = probe(project, command("python", "ok.py"))

    assert "ImportError: no app here" in report["import_error"]
    assert report["forked"] is False
    assert report["runs"][0]["stdout"] == "ran\n"
