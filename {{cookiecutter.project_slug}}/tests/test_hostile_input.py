"""Input crafted to break the service gets a 4xx with the usual JSON error body, never a 500."""

import asyncio
import json
import logging
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.logs import JsonFormatter
from {{ cookiecutter.package_name }}.main import create_app
from tests.helpers import query_body, serve

JSON = {"Content-Type": "application/json"}
GENERATED_REQUEST_ID = re.compile(r"[0-9a-f]{32}")


def assert_refused(response: httpx.Response, *statuses: int) -> dict[str, Any]:
    """A refusal in the service's own shape: the expected status and a JSON error body."""
    assert response.status_code in statuses, response.text
    body: dict[str, Any] = response.json()
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert body["error_type"]
    return body


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", id="nested-arrays"),
        pytest.param(
            b'{"prompt": ' + b'{"a": ' * 10_000 + b"1" + b"}" * 10_001, id="nested-objects"
        ),
        pytest.param(b'{"prompt": "caf\xc3\x28 \xff\xfe"}', id="invalid-utf8-value"),
        pytest.param(b'{"pro\xffmpt": "hello"}', id="invalid-utf8-key"),
        pytest.param(b"\x00\x01\x02\x03", id="binary"),
        pytest.param(b'{"prompt": "unterminated', id="truncated"),
        pytest.param(
            b'{"prompt": "x", "context_allocation": ' + b"9" * 5_000 + b"}", id="huge-int"
        ),
        pytest.param(b'{"prompt": "x", "context_allocation": 1e400}', id="infinity"),
        pytest.param(b'{"prompt": "x", "context_allocation": NaN}', id="nan"),
        pytest.param(b"[]", id="array-body"),
        pytest.param(b"", id="empty"),
    ],
)
async def test_malformed_bodies_are_refused(ai_client: httpx.AsyncClient, raw: bytes) -> None:
    response = await ai_client.post("/ai/query", content=raw, headers=JSON)

    assert_refused(response, 400, 422)


@pytest.mark.parametrize(
    "allocation",
    [-1, -(2**63), 10**6, 2**63, 10**30, 1.5, 50.0, "50", "fifty", True, None, [], {}],
    ids=repr,
)
async def test_out_of_range_allocations_are_a_422(
    ai_client: httpx.AsyncClient, allocation: object
) -> None:
    response = await ai_client.post(
        "/ai/query", json=query_body("What is 2+2?", context_allocation=allocation)
    )

    body = assert_refused(response, 422)
    assert body["detail"][0]["loc"] == ["body", "context_allocation"]


@pytest.mark.parametrize(
    "session_id",
    ["not-a-uuid", "../../etc/passwd", "' OR 1=1 --", "", "0" * 1_000, 12, ["x"], {"a": 1}],
    ids=repr,
)
async def test_session_ids_that_are_not_uuids_are_a_422(
    ai_client: httpx.AsyncClient, session_id: object
) -> None:
    response = await ai_client.post("/ai/query", json=query_body("hello", session_id=session_id))

    body = assert_refused(response, 422)
    assert body["detail"][0]["loc"] == ["body", "session_id"]
    # The offending value is not echoed back.
    assert "passwd" not in response.text


@pytest.mark.parametrize(
    "prompt",
    [
        "hello\x00world",
        "\x1b[31mred\x1b[0m and a bell\x07",
        "first line\r\nERROR forged log line",
        "\u202eright-to-left override",
        "\ud7ff\ue000\ufffe\U0010ffff",
        # Arithmetic the embedded engine evaluates: results must stay bounded.
        "9999999*" * 700 + "9",
        "((999999999999**64)**64)**64",
        "(-8)**0.5",
        "1e308*10-1e308*10",
        "(" * 500 + "1+1" + ")" * 500,
    ],
    ids=[
        "nul",
        "ansi-escapes",
        "crlf",
        "bidi-override",
        "odd-codepoints",
        "long-product",
        "power-tower",
        "complex-root",
        "infinities",
        "deep-parentheses",
    ],
)
async def test_odd_prompts_are_answered(ai_client: httpx.AsyncClient, prompt: str) -> None:
    """Control characters and odd code points are text like any other: PRSM gets them as they
    are, and the answer is valid JSON carrying them escaped."""
    response = await ai_client.post("/ai/query", json=query_body(prompt))

    assert response.status_code == 200, response.text
    assert response.json()["answer"]


async def test_a_lone_surrogate_is_refused(ai_client: httpx.AsyncClient) -> None:
    """JSON can escape half a UTF-16 pair, which no UTF-8 text (PRSM's, a cache key's) can
    hold: such a prompt is invalid input."""
    response = await ai_client.post(
        "/ai/query", content=b'{"prompt": "half a pair: \\ud800"}', headers=JSON
    )

    assert_refused(response, 422)


@pytest.mark.parametrize(
    "request_id",
    [
        b"x" * 129,
        b"has spaces in it",
        b"semi;colon",
        b"<script>alert(1)</script>",
        "caf\u00e9".encode(),
        "\u65e5\u672c".encode(),
        b"\x7f",
        b"",
    ],
    ids=["overlong", "spaces", "semicolon", "markup", "utf8-accent", "cjk", "delete", "empty"],
)
async def test_unsafe_request_ids_are_replaced(
    client: httpx.AsyncClient, request_id: bytes
) -> None:
    """CR and LF cannot even be sent (the client refuses them); anything else that is not a
    short plain token is replaced by an id of the service's own."""
    response = await client.get("/health", headers={b"X-Request-ID": request_id})

    assert response.status_code == 200
    assert GENERATED_REQUEST_ID.fullmatch(response.headers["X-Request-ID"])


async def test_control_characters_stay_escaped_in_the_logs(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    """A percent-encoded CR LF in the path reaches the request log decoded; the JSON line
    escapes it, so no one can forge a log line."""
    caplog.set_level(logging.INFO)

    response = await client.get("/no-such-page%0D%0AERROR%20forged%00")

    assert_refused(response, 404)
    lines = [JsonFormatter().format(record) for record in caplog.records]
    assert lines
    for line in lines:
        assert "\n" not in line
        assert "\r" not in line
        assert "\x00" not in line
    paths = [json.loads(line).get("path") for line in lines]
    assert "/no-such-page\r\nERROR forged\x00" in paths


async def test_a_header_block_over_the_limit_is_a_431(
    client: httpx.AsyncClient, settings: Settings
) -> None:
    padding = {"X-Padding": "a" * settings.max_request_header_bytes}

    response = await client.get("/health", headers=padding)

    body = assert_refused(response, 431)
    assert body["error_type"] == "request_headers_too_large"


async def test_line_breaks_smuggled_into_a_header_are_refused_by_the_server(
    settings: Settings,
) -> None:
    """Over a real socket, with no client library to refuse them: a CR or LF inside a header
    value ends the connection with a 400 from the HTTP parser, before the app (or a log
    line) sees the forged header, and the server goes on serving."""
    async with serve(create_app(settings), lifespan=True) as url:
        refusals = [
            await raw_exchange(url, b"X-Request-ID: abc" + line_break + b"Set-Cookie: forged=1")
            for line_break in (b"\r", b"\n", b"\r\n ")
        ]
        afterwards = await raw_exchange(url, b"X-Request-ID: abc")

    for response in refusals:
        assert response.startswith(b"HTTP/1.1 400 "), response
        assert b"forged" not in response
    assert afterwards.startswith(b"HTTP/1.1 200 "), afterwards
    assert b"x-request-id: abc\r\n" in afterwards


async def raw_exchange(url: str, header: bytes) -> bytes:
    """GET /health with one raw header line, as sent: the whole answer, until the server
    closes the connection."""
    address = urlsplit(url)
    assert address.hostname is not None
    assert address.port is not None
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    try:
        request = b"GET /health HTTP/1.1\r\nHost: test\r\nConnection: close\r\n"
        writer.write(request + header + b"\r\n\r\n")
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()
