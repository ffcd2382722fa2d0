"""Every command a rendered project tells its user to run, in the post-generation "Next" message
and in its README, checked in the project's own environment (the one the matrix test built):

- `uv sync`, `uv run alembic ...` and the project CLI's `create-user` run for real, on a scratch
  database (the password comes on standard input); the CLI's other commands, and any with a
  placeholder (`set-quota NAME N`), must be listed by its `--help`;
- every other `uv run` program (the server, the worker, the scripts) runs with `--help`: it is
  there and takes those options, and nothing long-running starts. `python -m <package>.metrics`
  runs with `true`, and what it would become is checked as a command of its own. pytest, ruff
  and mypy, which the matrix test runs for real, need only be installed;
- a tool outside the environment (docker, helm, kubectl, curl, a plain python) is checked by what
  it names in the project: a relative path must exist, a URL on the service must be a route;
- and a file a command names (`--log-config logging.yaml`, `scripts/bench_cache.py`) must exist.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from baking import BakedProject, find_uv

# Run for real by the matrix test's own steps (lint, types, tests): here, only their presence.
MATRIX_RUNS = frozenset({"mypy", "pytest", "ruff"})
# Programs outside the project's environment; their commands are checked by what they name.
EXTERNAL = frozenset({"cd", "curl", "docker", "helm", "kubectl", "python"})
# The file a command of an outside tool works on without naming it.
IMPLIED_FILES = {("docker", "compose"): "compose.yaml", ("docker", "build"): "Dockerfile"}
SEPARATORS = frozenset({"&&", "||", "|", ";", "(", ")"})
PLACEHOLDER = re.compile(r"[A-Z][A-Z_]*")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
FILE_SUFFIXES = (".yaml", ".yml", ".json", ".toml", ".ini", ".py")
_FENCED_BASH = re.compile(r"^```bash\n(.*?)^```", re.DOTALL | re.MULTILINE)
_INLINE_UV_RUN = re.compile(r"`(uv run [^`]+)`")
SERVICE = "127.0.0.1:8000"
PASSWORD = "a-first-password"
PROBE = Path(__file__).with_name("command_probe.py")


def next_message_commands(message: str) -> list[str]:
    """The command lines of the "Next" message: indented, not comments."""
    return [
        line.strip()
        for line in message.splitlines()
        if line.startswith("  ") and not line.strip().startswith("#")
    ]


def readme_commands(readme: str) -> list[list[str]]:
    """The README's bash blocks as lists of lines (continuations joined), then its inline
    `uv run ...` spans, one line each."""
    blocks = [
        [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]
        for block in _FENCED_BASH.findall(readme)
    ]
    return blocks + [[span] for span in _INLINE_UV_RUN.findall(_FENCED_BASH.sub("", readme))]


def simple_commands(lines: list[str]) -> Iterator[tuple[dict[str, str], list[str]]]:
    """(variables set for it, words) of each simple command of these lines of one shell
    session; `export` sets a variable for the lines after it."""
    exported: dict[str, str] = {}
    for line in lines:
        lexer = shlex.shlex(line, posix=True, punctuation_chars="();<>|&")
        lexer.whitespace_split = True
        lexer.commenters = "#"
        words: list[str] = []
        for token in [*lexer, ";"]:
            if token not in SEPARATORS:
                words.append(token)
                continue
            variables = {}
            while words and ASSIGNMENT.match(words[0]):
                name, _, value = words.pop(0).partition("=")
                variables[name] = value
            if words and words[0] == "export":
                exported.update(dict(word.partition("=")[::2] for word in words[1:]))
            elif words:
                yield {**exported, **variables}, words
            words = []


@dataclass(frozen=True)
class Run:
    """A program of the project's environment that command_probe.py runs for one command."""

    shown: str  # the command as the project prints it
    argv: tuple[str, ...]  # what `uv run --no-sync` is given for it
    variables: tuple[tuple[str, str], ...] = ()
    stdin: str | None = None
    purpose: str = "run"  # "run": must exit 0; "script": its --help; "cli": the CLI's --help

    @property
    def ran(self) -> str:
        words = [*(f"{name}={value}" for name, value in self.variables), "uv", "run", "--no-sync"]
        return shlex.join([*words, *self.argv])


class CommandCheck:
    """Checks one project's commands, each once.

    Reading the message and the README gives the problems that need nothing run (a missing
    file, an unknown program) and a plan: the project's programs to run, in order, and
    whether the app's routes are needed. `uv sync` is uv's own and runs here; the plan is
    run by one process of the project's interpreter, command_probe.py, which imports the app
    once for all of them. What it reports depends on nothing but the plan and the project's
    files, interpreter and variables, so a twin whose are byte-identical (step_reuse.py) can
    take the report instead of running the plan again; `problems()` then reads it against
    this project's own commands.
    """

    def __init__(self, project: BakedProject, message: str, scratch: Path) -> None:
        self.project = project
        self.scratch = scratch
        self.env = {
            **project.env,
            "PRSM_API_URL": "",
            "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'commands.db'}",
        }
        self.seen: set[tuple[str, ...]] = set()
        self.runs: list[Run] = []
        self.syncs: list[tuple[str, dict[str, str]]] = []  # `uv sync`: the command, variables
        self.scripts: dict[str, str] = {}  # script -> the command that runs it
        self.subcommands: dict[str, str] = {}  # CLI command -> the command that names it
        self.urls: dict[str, str] = {}  # path on the service -> the command that asks for it
        sessions = [next_message_commands(message), *readme_commands(project.read("README.md"))]
        self.static_problems = [
            problem
            for lines in sessions
            for variables, words in simple_commands(lines)
            for problem in self.check(variables, words)
        ]
        package = project.package
        self.runs += [
            Run(shown, ("python", script, "--help"), purpose="script")
            for script, shown in sorted(self.scripts.items())
        ]
        if self.subcommands:
            shown = next(iter(self.subcommands.values()))
            self.runs.append(Run(shown, (package, "--help"), purpose="cli"))

    def check(self, variables: Mapping[str, str], words: list[str]) -> list[str]:
        if tuple(words) in self.seen:
            return []
        self.seen.add(tuple(words))
        shown = shlex.join(words)
        found = [f"`{shown}`: {path} does not exist" for path in missing_paths(self.project, words)]
        implied = IMPLIED_FILES.get((words[0], words[1] if len(words) > 1 else ""))
        if implied and not self.project.has_file(implied):
            found.append(f"`{shown}`: the project has no {implied}")
        program = words[0]
        if program == "uv" and words[1:] == ["sync"]:
            self.syncs.append((shown, _local(variables, self.scratch)))
        elif program == "uv" and words[1:2] == ["run"] and len(words) > 2:
            found += self.uv_run(shown, words[2:], variables)
        elif program == "cd":
            if words[1:] != [self.project.path.name]:
                found.append(f"`{shown}`: the project is {self.project.path.name}")
        elif program == "curl":
            for word in words:
                if word.startswith(f"http://{SERVICE}/"):
                    self.urls.setdefault(urlsplit(word).path, shown)
        elif program not in EXTERNAL:
            found.append(f"`{shown}`: {program} is not a program these checks know")
        return found

    def uv_run(self, shown: str, argv: list[str], variables: Mapping[str, str]) -> list[str]:
        program, args = argv[0], argv[1:]
        package = self.project.package
        if program in MATRIX_RUNS:
            if not (self.project.path / ".venv" / "bin" / program).is_file():
                return [f"`{shown}`: {program} is not installed in the project"]
            return []
        if program == "python" and args[:2] == ["-m", f"{package}.metrics"]:
            # It prepares the metrics directory, then becomes the rest of the command.
            self.add(shown, [*argv[:3], "true"], variables)
            return self.check(variables, ["uv", "run", *args[2:]]) if args[2:] else []
        if program == "python" and args and args[0].endswith(".py"):
            self.scripts.setdefault(args[0], shown)
            return []
        if program == package and (args[:1] != ["create-user"] or placeholders(args)):
            self.subcommands.setdefault(args[0] if args else "", shown)
            return []
        real = program in {"alembic", package}
        stdin = f"{PASSWORD}\n" if real and "create-user" in args else None
        self.add(shown, [*argv, *([] if real else ["--help"])], variables, stdin)
        return []

    def add(
        self,
        shown: str,
        argv: list[str],
        variables: Mapping[str, str],
        stdin: str | None = None,
    ) -> None:
        local = tuple(sorted(_local(variables, self.scratch).items()))
        self.runs.append(Run(shown, tuple(argv), local, stdin))

    def plan(self) -> dict[str, Any]:
        """What command_probe.py is asked to do."""
        return {
            "package": self.project.package,
            "runs": [
                {
                    "argv": list(run.argv),
                    "variables": dict(run.variables),
                    "stdin": run.stdin,
                    "purpose": run.purpose,
                }
                for run in self.runs
            ],
            "routes": bool(self.urls),
        }

    def key_parts(self) -> tuple[dict[str, Any], dict[str, str]]:
        """The plan and the variables it runs with, as the step's key hashes them: this
        combination's scratch directory, which only holds what the commands write, named
        by a placeholder."""
        scratch = str(self.scratch)

        def neutral(value: Any) -> Any:
            if isinstance(value, str):
                return value.replace(scratch, "{scratch}")
            if isinstance(value, list):
                return [neutral(item) for item in value]
            if isinstance(value, dict):
                return {key: neutral(item) for key, item in value.items()}
            return value

        return neutral(self.plan()), neutral(self.env)

    def sync_problems(self) -> list[str]:
        """`uv sync`, run by uv for real (offline: the matrix built the environment)."""
        problems = []
        for shown, variables in self.syncs:
            args = [find_uv(), "sync", "--offline"]
            try:
                done = subprocess.run(
                    args,
                    cwd=self.project.path,
                    env={**self.env, **variables},
                    capture_output=True,
                    text=True,
                    timeout=180,
                    check=False,
                )
            except subprocess.TimeoutExpired:
                problems.append(f"`{shown}`: still running after 180 s")
                continue
            if done.returncode != 0:
                output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
                ran = "uv sync --offline"
                problems.append(f"`{shown}` (run as `{ran}`) exited {done.returncode}:\n{output}")
        return problems

    def probe(self, env: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Runs the plan with command_probe.py in the project's interpreter: its report, or
        `{"failed": why}`."""
        plan = self.plan()
        if not (plan["runs"] or plan["routes"]):
            return {"runs": []}
        plan_file = self.scratch / "command-plan.json"
        plan_file.write_text(json.dumps(plan), encoding="utf-8")
        argv = [find_uv(), "run", "--no-sync", "python", str(PROBE), str(plan_file)]
        try:
            done = subprocess.run(
                argv,
                cwd=self.project.path,
                env=dict(env or self.env),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return {"failed": "command_probe.py still running after 900 s"}
        if done.returncode != 0:
            return {"failed": f"command_probe.py exited {done.returncode}:\n{done.stderr[-3000:]}"}
        report: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        return report

    def problems(self, report: Mapping[str, Any]) -> list[str]:
        """What the probe's report says is wrong with this project's commands."""
        if "failed" in report:
            return [report["failed"]]
        problems = []
        if "import_error" in report:
            error = report["import_error"]
            problems.append(f"importing {self.project.package}.main failed:\n{error}")
        listed = ""
        for run, result in zip(self.runs, report["runs"], strict=True):
            status = result["status"]
            if run.purpose == "cli":
                listed = result["stdout"] if status == 0 else ""
            if status == 0:
                continue
            output = "\n".join((result["stdout"] + result["stderr"]).strip().splitlines()[-15:])
            if not isinstance(status, int):
                problems.append(f"`{run.shown}`: {status}")
            elif run.purpose == "script":
                problems.append(f"`{run.shown}`: with --help it ended with {status}:\n{output}")
            else:
                problems.append(f"`{run.shown}` (run as `{run.ran}`) exited {status}:\n{output}")
        problems += [
            f"`{shown}`: `{self.project.package} --help` lists no {name!r}"
            for name, shown in self.subcommands.items()
            if not re.search(rf"^\s+{re.escape(name)}(\s|$)", listed, re.MULTILINE)
        ]
        routes = set(report.get("routes", []))
        problems += [
            f"`{shown}`: the service has no route {path}"
            for path, shown in self.urls.items()
            if path not in routes
        ]
        return problems


def command_problems(project: BakedProject, message: str, scratch: Path) -> list[str]:
    """What is wrong with the commands the "Next" message and the README give (every check
    run here, nothing reused)."""
    check = CommandCheck(project, message, scratch)
    return [*check.static_problems, *check.sync_problems(), *check.problems(check.probe())]


def placeholders(args: list[str]) -> bool:
    return any(PLACEHOLDER.fullmatch(arg) for arg in args)


def _local(variables: Mapping[str, str], scratch: Path) -> dict[str, str]:
    """The command's variables, with an absolute path (a /dev/shm directory) moved to scratch."""
    return {
        name: str(scratch / Path(value).name) if value.startswith("/") else value
        for name, value in variables.items()
    }


def missing_paths(project: BakedProject, words: list[str]) -> list[str]:
    """Arguments naming a file or directory of the project that it does not have: a relative
    path into one of its top-level directories, or a file name with a known suffix."""
    missing = []
    for word in words[1:]:
        candidate = word.partition("=")[2] if word.startswith("--") else word
        if not re.fullmatch(r"[\w.-]+(/[\w.-]+)*/?", candidate) or candidate in {".", ".."}:
            continue
        top = candidate.split("/")[0]
        names_a_file = "/" in candidate and (project.path / top).exists()
        if (names_a_file or candidate.endswith(FILE_SUFFIXES)) and not (
            project.path / candidate
        ).exists():
            missing.append(candidate)
    return missing
