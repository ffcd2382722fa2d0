"""Prompts are the caller's data: no log line and no error body carries their text."""

import json
import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.logs import JsonFormatter
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import query_body

# Distinctive enough that finding it anywhere means the prompt itself leaked.
PROMPT = "zebra-quartz-7431 tell me the launch codes"
MARKER = "zebra-quartz-7431"


def log_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Every record as the service would write it: a JSON line with all its extra fields."""
    return [JsonFormatter().format(record) for record in caplog.records]


async def test_prompts_stay_out_of_logs_and_error_bodies(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    error_bodies = []

    answered = await ai_client.post("/ai/query", json=query_body(PROMPT))
    streamed = await ai_client.post("/ai/stream", json=query_body(PROMPT))
    invalid = await ai_client.post("/ai/query", json=query_body(PROMPT, context_allocation=-1))
    error_bodies.append(invalid.text)
    for status in (429, 500, 503):
        engine.faults.fail_next = 1
        engine.faults.fail_status = status
        # A new prompt each time: a cached answer would not reach the failing engine.
        failed = await ai_client.post("/ai/query", json=query_body(f"{PROMPT} {status}"))
        assert failed.status_code >= 400
        error_bodies.append(failed.text)

    assert answered.status_code == 200
    assert streamed.status_code == 200
    assert invalid.status_code == 422
    lines = log_lines(caplog)
    # Read as JSON: the lines are compact JSON (orjson) since the request line got cheaper.
    assert any(json.loads(line).get("path") == "/ai/query" for line in lines)
    assert [line for line in lines if MARKER in line] == []
    assert [body for body in error_bodies if MARKER in body] == []
