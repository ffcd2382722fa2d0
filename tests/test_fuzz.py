"""Fuzz a rendered service through its own OpenAPI schema with schemathesis: by default
(`--fuzz=ci`) everything off, everything on and each feature of the service alone, and with
`--fuzz=all` every on/off mix. Each is served by uvicorn on 127.0.0.1 with the embedded
engine, Redis under a key prefix of its own and (auth on) a migrated SQLite database with one
user whose token every request carries. No response may be a 5xx, and every documented
response must match its schema. The cases generated per combination are recorded for the
table at the end."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from baking import BakedProject, Combination
from serving import (
    access_token,
    delete_redis_keys,
    prepare_user,
    served,
    service_env,
    uses_redis,
)

# Per operation and phase; enough to reach every documented status. 250-800 cases and
# 10-30 s of fuzzing a project on 2 cores (the fuzz case table at the end shows both).
MAX_EXAMPLES = 50
FUZZ_USER, FUZZ_PASSWORD = "fuzzer", secrets.token_urlsafe(16)
# Fails the run when the authenticated routes only ever answered 401/403: the token must work.
SCHEMATHESIS_CONFIG = '[warnings]\nfail-on = ["missing_auth"]\n'


def test_fuzzed_service_never_fails(
    fuzz_combination: Combination,
    bake: Callable[..., BakedProject],
    tmp_path: Path,
    request: pytest.FixtureRequest,
    record_property: Callable[[str, object], None],
) -> None:
    # The fuzz case table (conftest.py) reads these back on the xdist controller.
    record_property("fuzz_combination", request.node.callspec.id)
    project = bake(**fuzz_combination.answers)
    project.install()
    auth = bool(project.answers["use_auth"])
    env = service_env(project, tmp_path, LOG_LEVEL="WARNING")
    headers = []
    if auth:
        prepare_user(project, env, FUZZ_USER, FUZZ_PASSWORD)
    try:
        with served(project, env, tmp_path / "server.log") as base_url:
            if auth:
                token = access_token(base_url, FUZZ_USER, FUZZ_PASSWORD)
                headers = ["-H", f"Authorization: Bearer {token}"]
            config = tmp_path / "schemathesis.toml"
            config.write_text(SCHEMATHESIS_CONFIG)
            started = time.perf_counter()
            result = subprocess.run(
                [
                    str(Path(sys.executable).with_name("schemathesis")),
                    "--config-file",
                    str(config),
                    "run",
                    f"{base_url}/openapi.json",
                    "--checks",
                    "not_a_server_error,response_schema_conformance",
                    "--max-examples",
                    str(MAX_EXAMPLES),
                    "--request-timeout",
                    "10",
                    "--generation-database",
                    "none",
                    "--no-color",
                    "--report-dir",
                    str(tmp_path / "report"),
                    *headers,
                ],
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
            )
            record_property("fuzz_seconds", round(time.perf_counter() - started, 2))
    finally:
        if uses_redis(project):
            delete_redis_keys(project, env)
    output = result.stdout + result.stderr
    cases = re.search(r"(\d+) generated", output)
    record_property("fuzz_cases", int(cases.group(1)) if cases else 0)
    assert result.returncode == 0, output[-6000:]
    assert cases, output[-3000:]
