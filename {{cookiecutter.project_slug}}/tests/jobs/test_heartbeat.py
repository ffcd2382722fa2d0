"""The worker's heartbeat file, which a liveness probe reads to tell a stuck worker."""

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs import heartbeat
from tests.jobs.helpers import running_worker

# Beats this often in these tests (production: every 5 s, and a probe allows 30 s).
INTERVAL = 0.05


@pytest.fixture
def beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(heartbeat, "HEARTBEAT_INTERVAL_SECONDS", INTERVAL)
    return tmp_path / "run" / "heartbeat"


def last_beat(path: Path) -> float | None:
    return path.stat().st_mtime if path.exists() else None


async def wait_for_beat(path: Path) -> float:
    async with asyncio.timeout(5):
        while (beat := last_beat(path)) is None:  # noqa: ASYNC110  # a file, no event to wait on
            await asyncio.sleep(INTERVAL / 2)
    return beat


async def test_a_listening_worker_keeps_its_heartbeat_fresh(
    settings: Settings, beat_file: Path
) -> None:
    settings = settings.model_copy(update={"job_heartbeat_file": str(beat_file)})

    async with running_worker(settings):
        first = await wait_for_beat(beat_file)
        await asyncio.sleep(INTERVAL * 4)
        assert (last_beat(beat_file) or 0) > first
        assert heartbeat.problem(beat_file, max_age_seconds=1.0) is None
    await asyncio.sleep(INTERVAL)

    # A worker that stopped listening is not alive, whatever its process does.
    assert last_beat(beat_file) is None
    assert "not listening" in str(heartbeat.problem(beat_file, max_age_seconds=1.0))


async def test_a_blocked_event_loop_fails_the_probe_until_it_runs_again(
    settings: Settings, beat_file: Path
) -> None:
    settings = settings.model_copy(update={"job_heartbeat_file": str(beat_file)})
    verdicts: list[str | None] = []

    def probe_during_the_block() -> None:
        time.sleep(0.3)
        verdicts.append(heartbeat.problem(beat_file, max_age_seconds=0.2))

    async with running_worker(settings):
        await wait_for_beat(beat_file)
        await asyncio.sleep(INTERVAL * 2)
        prober = threading.Thread(target=probe_during_the_block)
        prober.start()
        # What a job calling something synchronous that hangs does to the worker's loop.
        time.sleep(0.45)  # noqa: ASYNC251
        prober.join()
        await asyncio.sleep(INTERVAL * 3)
        after = heartbeat.problem(beat_file, max_age_seconds=0.2)

    assert len(verdicts) == 1
    assert "s old, more than 0.2 s" in str(verdicts[0])
    assert after is None


def run_probe(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """The probe as the kubelet runs it: its own process, the worker's environment."""
    return subprocess.run(  # noqa: S603  # this interpreter, the project's own module
        [sys.executable, "-m", "{{ cookiecutter.package_name }}.jobs.heartbeat", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **(env or {})},
    )


def test_the_probe_passes_a_fresh_heartbeat_and_fails_a_stale_or_missing_one(
    tmp_path: Path,
) -> None:
    beat = tmp_path / "heartbeat"
    beat.touch()
    fresh = run_probe("--max-age", "30", env={"JOB_HEARTBEAT_FILE": str(beat)})
    os.utime(beat, (time.time() - 60, time.time() - 60))
    stale = run_probe("--max-age", "30", "--file", str(beat))
    missing = run_probe("--file", str(tmp_path / "never-written"))

    assert fresh.returncode == 0, fresh.stderr
    assert stale.returncode == 1
    assert "more than 30 s" in stale.stderr
    assert missing.returncode == 1
    assert "not listening" in missing.stderr


def test_the_probe_refuses_to_guess_the_file() -> None:
    result = run_probe(env={"JOB_HEARTBEAT_FILE": ""})

    assert result.returncode == 2
    assert "set JOB_HEARTBEAT_FILE" in result.stderr
