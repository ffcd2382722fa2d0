"""Several worker processes: whichever one answers a scrape reports the totals of all.

The server runs as the README starts it, through `python -m <package>.metrics`, with the
embedded engine, on a real local port.
"""

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.metrics.__main__ import prepare
from tests.helpers import free_port, query_body, settings_env
from tests.metrics.scraping import Scrape

WORKERS = 2
STARTUP_SECONDS = 30


def test_prepare_empties_only_the_value_files(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    prepare(directory)
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "notes.txt").write_text("kept")

    prepare(directory)

    assert [path.name for path in directory.iterdir()] == ["notes.txt"]


@dataclass(frozen=True)
class Server:
    url: str
    log: Path


@pytest.fixture
def multiproc_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "metrics"
    directory.mkdir()
    # Left by an earlier run: unreadable, so a scrape would fail if the start kept it.
    (directory / "counter_1.db").write_bytes(b"\xff" * 64)
    return directory


@pytest.fixture
def server(tmp_path: Path, multiproc_dir: Path, settings: Settings) -> Iterator[Server]:
    port = free_port()
    package = "{{ cookiecutter.package_name }}"
    command = [sys.executable, "-m", f"{package}.metrics"]
    command += [sys.executable, "-m", "uvicorn", "--factory", f"{package}.main:create_app"]
    command += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS)]
    env = {
        **os.environ,
        **settings_env(settings),
        "PROMETHEUS_MULTIPROC_DIR": str(multiproc_dir),
        "LOG_LEVEL": "WARNING",
    }
    log = tmp_path / "server.log"
    # Started in an empty directory, so that no .env changes what the test checks.
    with (
        log.open("wb") as output,
        subprocess.Popen(  # noqa: S603 -- this interpreter, fixed arguments
            command, cwd=tmp_path, env=env, stdout=output, stderr=subprocess.STDOUT
        ) as process,
    ):
        try:
            yield Server(f"http://127.0.0.1:{port}", log)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


async def test_every_scrape_reports_the_totals_of_all_workers(
    server: Server, multiproc_dir: Path, ai_client: httpx.AsyncClient
) -> None:
    # The test user's credentials, if the /ai routes need any; they hold for both processes.
    headers = {k: v for k, v in ai_client.headers.items() if k.lower() == "authorization"}
    # A fresh connection per request, so that the kernel hands requests to both workers.
    limits = httpx.Limits(max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=server.url, headers=headers, limits=limits) as client:
        await _wait_until_up(client, server)
        sent = 0
        while _workers_that_answered(multiproc_dir) < WORKERS:
            assert sent < 400, "one worker answered every query: the kernel never balanced"
            # A small allocation each: with auth on, the test user's quota holds them all.
            batch = [query_body(f"What is {sent}+{i}?", context_allocation=1) for i in range(8)]
            responses = await asyncio.gather(*(client.post("/ai/query", json=b) for b in batch))
            assert {response.status_code for response in responses} == {200}
            sent += len(responses)

        # A worker killed while it created a file leaves it empty: scrapes must not mind.
        (multiproc_dir / "counter_99999.db").touch()
        # A worker counts a request after its response has left, so the last count can land
        # just after the caller has its answer: wait for it once, then every scrape must agree.
        await _wait_for_http_count(client, sent)
        scraped = [await client.get("/metrics") for _ in range(12)]

    assert {response.status_code for response in scraped} == {200}
    for metrics in (Scrape.parse(response.text) for response in scraped):
        assert metrics.value("prsm_queries_total", outcome="ok") == sent
        assert metrics.value("http_requests_total", handler="/ai/query", status="2xx") == sent
        assert metrics.value("prsm_query_duration_seconds_count") == sent


async def _wait_for_http_count(client: httpx.AsyncClient, expected: int) -> None:
    for _ in range(100):
        scrape = Scrape.parse((await client.get("/metrics")).text)
        if scrape.value("http_requests_total", handler="/ai/query", status="2xx") >= expected:
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"the workers never counted {expected} queries")


async def _wait_until_up(client: httpx.AsyncClient, server: Server) -> None:
    for _ in range(STARTUP_SECONDS * 50):
        try:
            if (await client.get("/health")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.02)
    output = server.log.read_text(errors="replace")[-3000:]
    pytest.fail(f"the server did not answer /health within {STARTUP_SECONDS} s:\n{output}")


def _workers_that_answered(directory: Path) -> int:
    """Processes whose own counter file has at least one answered query."""
    answered = 0
    for path in directory.glob("counter_*.db"):
        if path.stat().st_size == 0:  # a worker still starting
            continue
        metrics = MultiProcessCollector.merge([str(path)])  # type: ignore[no-untyped-call]
        samples = [sample for metric in metrics for sample in metric.samples]
        if any(
            s.name == "prsm_queries_total" and s.labels == {"outcome": "ok"} and s.value > 0
            for s in samples
        ):
            answered += 1
    return answered
