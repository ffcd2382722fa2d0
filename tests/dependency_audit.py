"""Audit the resolved dependencies of every combination the template renders for known
vulnerabilities, and print a table of what was found:

    uv run python tests/dependency_audit.py [--json .results/dependency-audit.json]
        [--locks .results/locks]

Each combination of the full matrix is rendered and locked with uv (its runtime and dev
dependencies, every platform), its pins exported, and the union of all pins is audited once
with pip-audit. With `--locks DIR`, a combination whose pyproject.toml and uv.lock the
matrix left in DIR/<combination>/ (`pytest --keep-locks DIR`) is audited from those, as its
own tests ran it, and only the others are rendered and locked here.

pip-audit asks PyPI's per-release JSON API; a pin it could not audit that way is looked up
in the project's own JSON, whose vulnerability list describes the latest release: when the
pin is that release, the list is the pin's. A pin neither can vouch for is reported as not
audited, never as clean.

Exits 1 when any pin has a known vulnerability, 2 when the audit could not run at all.
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
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookiecutter.main import cookiecutter

from baking import (
    TEMPLATE_ROOT,
    Combination,
    Template,
    combinations,
    find_uv,
    write_cookiecutter_config,
)

PYPI_PROJECT_JSON = "https://pypi.org/pypi/{name}/json"
LOCK_WORKERS = 4


@dataclass(frozen=True, order=True)
class Pin:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


@dataclass
class Finding:
    """What the audit knows of one pin: its vulnerabilities, or why it was not audited."""

    vulnerabilities: list[dict[str, Any]] = field(default_factory=list)
    not_audited: str | None = None
    source: str = "pip-audit"


def canonical(name: str) -> str:
    """A distribution name as PyPI compares them (PEP 503)."""
    return re.sub(r"[-_.]+", "-", name).strip().lower()


def render(template: Template, combination: Combination, output: Path, config: Path) -> Path:
    # The post-generation hook's own `uv lock` would only repeat the one below.
    os.environ["PRSM_TEMPLATE_SKIP_LOCK"] = "1"
    # The hook's "what to run next" lines, once per combination, would bury the report.
    saved_stdout = os.dup(1)
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        try:
            path = cookiecutter(
                str(template.root),
                no_input=True,
                extra_context=combination.answers,
                output_dir=str(output / combination.id),
                config_file=str(config),
            )
        finally:
            os.dup2(saved_stdout, 1)
            os.close(saved_stdout)
    return Path(path)


def resolved_pins(project: Path) -> set[Pin]:
    """Every package the project's lock resolves, dev tools included, for every platform."""
    if not (project / "uv.lock").exists():
        env = {**os.environ, "UV_NO_PROGRESS": "1"}
        subprocess.run([find_uv(), "lock", "--quiet"], cwd=project, env=env, check=True)
    return exported_pins(project)


def exported_pins(project: Path) -> set[Pin]:
    """The pins of the project's uv.lock, as it stands."""
    uv = find_uv()
    env = {**os.environ, "UV_NO_PROGRESS": "1"}
    export = [uv, "export", "--frozen", "--all-groups", "--no-emit-project", "--no-hashes"]
    exported = subprocess.run(
        [*export, "--no-header", "--no-annotate", "--format", "requirements-txt"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    pins = set()
    for line in exported.splitlines():
        requirement = line.split(";", 1)[0].strip()
        if "==" in requirement:
            name, version = requirement.split("==", 1)
            pins.add(Pin(canonical(name), version.strip()))
    return pins


def is_locked(project: Path) -> bool:
    return (project / "pyproject.toml").is_file() and (project / "uv.lock").is_file()


def project_files(project: Path) -> tuple[bytes, bytes]:
    """What a combination's pins come from: its pyproject.toml and its lock, if it has one."""
    lock = project / "uv.lock"
    return (project / "pyproject.toml").read_bytes(), lock.read_bytes() if lock.exists() else b""


def pip_audit(pins: Iterable[Pin], workdir: Path) -> dict[Pin, Finding]:
    # One pin per name: the union of several locks could hold two versions of a package.
    by_name: dict[str, list[Pin]] = {}
    for pin in sorted(pins):
        by_name.setdefault(pin.name, []).append(pin)
    findings: dict[Pin, Finding] = {}
    for round_ in range(max(len(versions) for versions in by_name.values())):
        batch = [versions[round_] for versions in by_name.values() if len(versions) > round_]
        findings.update(_pip_audit_once(batch, workdir / f"round-{round_}"))
    return findings


def _pip_audit_once(pins: list[Pin], workdir: Path) -> dict[Pin, Finding]:
    workdir.mkdir()
    requirements = workdir / "requirements.txt"
    requirements.write_text("".join(f"{pin}\n" for pin in pins))
    report = workdir / "pip-audit.json"
    command = [sys.executable, "-m", "pip_audit", "--requirement", str(requirements)]
    command += ["--no-deps", "--disable-pip", "--progress-spinner", "off"]
    command += ["--format", "json", "--output", str(report)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    # 1 means "vulnerabilities found"; anything else without a report is a failure to run.
    if done.returncode not in (0, 1) or not report.exists():
        raise RuntimeError(f"pip-audit exited {done.returncode}:\n{done.stderr[-3000:]}")
    pinned = {pin.name: pin for pin in pins}
    findings = {}
    for dependency in json.loads(report.read_text())["dependencies"]:
        # A skipped dependency's entry carries no version: it is the one we asked for.
        pin = pinned[canonical(dependency["name"])]
        if "skip_reason" in dependency:
            findings[pin] = Finding(not_audited=dependency["skip_reason"])
        else:
            findings[pin] = Finding(vulnerabilities=dependency.get("vulns", []))
    return findings


def latest_release_finding(pin: Pin, why_skipped: str) -> Finding:
    """The project JSON's vulnerability list, when `pin` is the latest release."""
    url = PYPI_PROJECT_JSON.format(name=pin.name)
    try:
        with urllib.request.urlopen(url, timeout=30) as response:  # nosec B310: a fixed https URL
            project = json.load(response)
    except (OSError, ValueError) as error:
        return Finding(not_audited=f"{why_skipped}; project JSON unavailable: {error}")
    latest = project.get("info", {}).get("version")
    if latest != pin.version:
        return Finding(not_audited=f"{why_skipped}; not the latest release ({latest})")
    vulnerabilities = [
        {"id": v.get("id"), "fix_versions": v.get("fixed_in", []), "aliases": v.get("aliases", [])}
        for v in project.get("vulnerabilities", [])
    ]
    return Finding(vulnerabilities=vulnerabilities, source="latest-release JSON")


def audit(pins: set[Pin], workdir: Path) -> dict[Pin, Finding]:
    findings = pip_audit(pins, workdir)
    skipped = {pin: f.not_audited for pin, f in findings.items() if f.not_audited}
    with ThreadPoolExecutor(LOCK_WORKERS) as pool:
        fallbacks = pool.map(lambda item: latest_release_finding(*item), skipped.items())
        findings.update(zip(skipped, fallbacks, strict=True))
    for pin in pins - findings.keys():
        findings[pin] = Finding(not_audited="pip-audit did not report it")
    return findings


def table(rows: list[list[str]], headers: list[str]) -> str:
    columns = zip(headers, *rows, strict=True)
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    line = "  ".join
    out = [line(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    out.append(line("-" * w for w in widths))
    out += [line(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) for row in rows]
    return "\n".join(out)


def report(
    per_combination: Mapping[str, set[Pin]], findings: Mapping[Pin, Finding]
) -> dict[str, Any]:
    rows = []
    for combination, pins in per_combination.items():
        vulnerable = sorted(str(p) for p in pins if findings[p].vulnerabilities)
        unaudited = [p for p in pins if findings[p].not_audited]
        vulnerable_list = ", ".join(vulnerable) or "-"
        rows.append([combination, str(len(pins)), str(len(unaudited)), vulnerable_list])
    print(table(rows, ["combination", "pins", "not audited", "vulnerable"]))

    vulnerable_pins = {p: f for p, f in sorted(findings.items()) if f.vulnerabilities}
    if vulnerable_pins:
        print("\nKnown vulnerabilities:")
        vulnerability_rows = [
            [str(pin), v.get("id", "?"), ", ".join(v.get("fix_versions") or []) or "none yet"]
            for pin, finding in vulnerable_pins.items()
            for v in finding.vulnerabilities
        ]
        print(table(vulnerability_rows, ["pin", "advisory", "fixed in"]))
    unaudited_pins = {p: f for p, f in sorted(findings.items()) if f.not_audited}
    if unaudited_pins:
        print(f"\nNot audited ({len(unaudited_pins)} of {len(findings)} pins):")
        for pin, finding in unaudited_pins.items():
            print(f"  {pin}: {finding.not_audited}")
    by_source: dict[str, int] = {}
    for finding in findings.values():
        if not finding.not_audited:
            by_source[finding.source] = by_source.get(finding.source, 0) + 1
    print(
        f"\n{len(per_combination)} combinations, {len(findings)} distinct pins: "
        f"{len(findings) - len(unaudited_pins)} audited "
        f"({', '.join(f'{n} by {s}' for s, n in sorted(by_source.items())) or 'none'}), "
        f"{len(unaudited_pins)} not audited, {len(vulnerable_pins)} with known vulnerabilities"
    )
    return {
        "combinations": {c: sorted(str(p) for p in pins) for c, pins in per_combination.items()},
        "findings": {
            str(pin): {
                "vulnerabilities": f.vulnerabilities,
                "not_audited": f.not_audited,
                "source": f.source,
            }
            for pin, f in sorted(findings.items())
        },
        "vulnerable": len(vulnerable_pins),
        "not_audited": len(unaudited_pins),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, help="also write the findings here")
    parser.add_argument(
        "--locks",
        type=Path,
        metavar="DIR",
        help="the pyproject.toml and uv.lock of each combination, in DIR/<combination>/, as "
        "the matrix left them (pytest --keep-locks DIR); the others are locked here",
    )
    args = parser.parse_args()
    template = Template(TEMPLATE_ROOT)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="dependency-audit-") as temporary:
        workdir = Path(temporary)
        config = write_cookiecutter_config(workdir)
        matrix = combinations(template, "full")
        kept = {
            c.id: args.locks / c.id for c in matrix if args.locks and is_locked(args.locks / c.id)
        }
        projects = {
            c.id: kept.get(c.id) or render(template, c, workdir / "render", config) for c in matrix
        }
        # Combinations with the same pyproject.toml and lock resolve the same pins
        # (use_kubernetes, for one, adds no Python dependency): each is exported once.
        inputs = {c: project_files(path) for c, path in projects.items()}
        distinct = {files: projects[c] for c, files in reversed(inputs.items())}
        print(
            f"{len(kept)} combinations as the matrix locked them, {len(projects) - len(kept)} "
            f"rendered and locked here; {len(distinct)} distinct pyproject.toml and lock",
            flush=True,
        )
        with ThreadPoolExecutor(LOCK_WORKERS) as pool:
            locked = dict(zip(distinct, pool.map(resolved_pins, distinct.values()), strict=True))
        per_combination = {c: locked[files] for c, files in inputs.items()}
        everything = set().union(*per_combination.values())
        print(f"auditing {len(everything)} distinct pins with pip-audit", flush=True)
        try:
            findings = audit(everything, workdir)
        except RuntimeError as error:
            print(f"the audit could not run: {error}", file=sys.stderr)
            return 2
    summary = report(per_combination, findings)
    print(f"({time.monotonic() - started:.0f} s)")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if summary["vulnerable"] else 0


if __name__ == "__main__":
    sys.exit(main())
