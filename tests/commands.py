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
from pathlib import Path
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


class CommandCheck:
    """Checks one project's commands, each once. What needs the app's own interpreter (the
    scripts, the CLI's command list, the app's routes) is gathered first and asked of one
    process at the end, `command_probe.py`, so the app is imported once."""

    def __init__(self, project: BakedProject, scratch: Path) -> None:
        self.project = project
        self.scratch = scratch
        self.env = {
            **project.env,
            "PRSM_API_URL": "",
            "DATABASE_URL": f"sqlite+aiosqlite:///{scratch / 'commands.db'}",
        }
        self.seen: set[tuple[str, ...]] = set()
        self.scripts: dict[str, str] = {}  # script -> the command that runs it
        self.subcommands: dict[str, str] = {}  # CLI command -> the command that names it
        self.urls: dict[str, str] = {}  # path on the service -> the command that asks for it

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
            found += self.run(shown, ["sync", "--offline"], variables)
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
            inner = self.check(variables, ["uv", "run", *args[2:]]) if args[2:] else []
            return self.run(shown, ["run", "--no-sync", *argv[:3], "true"], variables) + inner
        if program == "python" and args and args[0].endswith(".py"):
            self.scripts.setdefault(args[0], shown)
            return []
        if program == package and (args[:1] != ["create-user"] or placeholders(args)):
            self.subcommands.setdefault(args[0] if args else "", shown)
            return []
        real = program in {"alembic", package}
        command = ["run", "--no-sync", *argv, *([] if real else ["--help"])]
        stdin = f"{PASSWORD}\n" if real and "create-user" in args else None
        return self.run(shown, command, variables, stdin)

    def run(
        self,
        shown: str,
        uv_args: list[str],
        variables: Mapping[str, str],
        stdin: str | None = None,
    ) -> list[str]:
        try:
            done = subprocess.run(
                [find_uv(), *uv_args],
                cwd=self.project.path,
                env={**self.env, **_local(variables, self.scratch)},
                input=stdin,
                capture_output=True,
                text=True,
                timeout=180,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return [f"`{shown}`: still running after 180 s"]
        if done.returncode != 0:
            output = "\n".join((done.stdout + done.stderr).strip().splitlines()[-15:])
            ran = shlex.join(["uv", *uv_args])
            return [f"`{shown}` (run as `{ran}`) exited {done.returncode}:\n{output}"]
        return []

    def probe(self) -> list[str]:
        """Asks the app's interpreter about the scripts, CLI commands and URLs gathered."""
        tasks = {
            "package": self.project.package,
            "scripts": sorted(self.scripts),
            "cli": bool(self.subcommands),
            "routes": bool(self.urls),
        }
        if not (tasks["scripts"] or tasks["cli"] or tasks["routes"]):
            return []
        argv = ["run", "--no-sync", "python", str(PROBE), json.dumps(tasks)]
        done = subprocess.run(
            [find_uv(), *argv],
            cwd=self.project.path,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        if done.returncode != 0:
            return [f"command_probe.py exited {done.returncode}:\n{done.stderr[-3000:]}"]
        results = json.loads(done.stdout.strip().splitlines()[-1])
        problems = [
            f"`{self.scripts[script]}`: with --help it ended with {status!r}"
            for script, status in results["scripts"].items()
            if status != 0
        ]
        listed = results.get("cli", "")
        problems += [
            f"`{shown}`: `{self.project.package} --help` lists no {name!r}"
            for name, shown in self.subcommands.items()
            if not re.search(rf"^\s+{re.escape(name)}(\s|$)", listed, re.MULTILINE)
        ]
        routes = set(results.get("routes", []))
        problems += [
            f"`{shown}`: the service has no route {path}"
            for path, shown in self.urls.items()
            if path not in routes
        ]
        return problems


def command_problems(project: BakedProject, message: str, scratch: Path) -> list[str]:
    """What is wrong with the commands the "Next" message and the README give."""
    checks = CommandCheck(project, scratch)
    sessions = [next_message_commands(message), *readme_commands(project.read("README.md"))]
    problems = [
        problem
        for lines in sessions
        for variables, words in simple_commands(lines)
        for problem in checks.check(variables, words)
    ]
    return problems + checks.probe()


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
