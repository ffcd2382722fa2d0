"""The remote path, end to end over real sockets: the service talks HTTP to a PRSM node.

The node here is the embedded engine served by uvicorn on a local port, plus a small app that
answers the way older nodes do.
"""

import ssl
from collections.abc import AsyncIterator

import httpx
import pytest
from pydantic import SecretStr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.prsm.client import verified_tls
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import query_body, serve, sse_events

API_KEY = "test-node-key"


class KeyCheckingNode:
    """The embedded engine behind a bearer-key check, like a node with auth enabled."""

    def __init__(self) -> None:
        self.engine = EmbeddedEngine()
        self.request_ids: list[str | None] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            self.request_ids.append(headers.get(b"x-request-id", b"").decode() or None)
            if headers.get(b"authorization") != f"Bearer {API_KEY}".encode():
                refusal = JSONResponse({"error": "unauthorized"}, status_code=401)
                await refusal(scope, receive, send)
                return
        await self.engine.app(scope, receive, send)


@pytest.fixture
def node() -> KeyCheckingNode:
    return KeyCheckingNode()


@pytest.fixture
async def node_url(node: KeyCheckingNode) -> AsyncIterator[str]:
    async with serve(node) as url:
        yield url


class TestRemoteNode:
    @pytest.fixture
    def settings(self, settings: Settings, node_url: str) -> Settings:
        return settings.model_copy(
            update={"prsm_api_url": node_url, "prsm_api_key": SecretStr(API_KEY)}
        )

    async def test_query_over_the_network(
        self, ai_client: httpx.AsyncClient, node: KeyCheckingNode
    ) -> None:
        response = await ai_client.post(
            "/ai/query", json=query_body("What is 7*6?"), headers={"X-Request-ID": "req-1"}
        )

        assert response.status_code == 200
        assert response.json()["answer"] == "42"
        assert node.engine.queries_answered == 1
        assert "req-1" in node.request_ids

    async def test_stream_over_the_network(self, ai_client: httpx.AsyncClient) -> None:
        response = await ai_client.post("/ai/stream", json=query_body("What is 2**10?"))

        events = sse_events(response)
        assert events[0][0] == "start"
        assert events[-1] == ("end", {"type": "end", "final_answer": "1024", "ftns_charged": 0.08})

    async def test_ready(self, client: httpx.AsyncClient) -> None:
        response = await client.get("/health/ready")

        assert response.json()["checks"]["prsm"] == "ok"


async def test_the_whole_path_over_real_sockets(
    settings: Settings, node: KeyCheckingNode, node_url: str, ai_client: httpx.AsyncClient
) -> None:
    """Caller -> uvicorn -> service -> HTTP -> uvicorn -> PRSM node, nothing in-process."""
    remote = settings.model_copy(
        update={"prsm_api_url": node_url, "prsm_api_key": SecretStr(API_KEY)}
    )
    async with (
        serve(create_app(remote), lifespan=True) as service_url,
        httpx.AsyncClient(base_url=service_url, headers=ai_client.headers) as caller,
    ):
        response = await caller.post("/ai/query", json=query_body("What is 9*9?"))

    assert response.status_code == 200
    assert response.json()["answer"] == "81"
    assert node.engine.queries_answered == 1


def test_one_tls_context_per_process_verifying_as_httpx_does() -> None:
    """Loading the TLS roots takes tens of milliseconds: every client of the process shares
    one context, and it still checks certificates and host names."""
    context = verified_tls()

    assert verified_tls() is context
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname


class TestWrongKey:
    @pytest.fixture
    def settings(self, settings: Settings, node_url: str) -> Settings:
        return settings.model_copy(
            update={"prsm_api_url": node_url, "prsm_api_key": SecretStr("wrong")}
        )

    async def test_is_a_502_that_leaks_no_key(self, ai_client: httpx.AsyncClient) -> None:
        response = await ai_client.post("/ai/query", json=query_body("What is 1+1?"))

        assert response.status_code == 502
        assert "wrong" not in response.text
        assert API_KEY not in response.text


class TestOlderNode:
    """Older nodes send `{error, detail}` error bodies and have no streaming endpoint."""

    @pytest.fixture
    async def node_url(self) -> AsyncIterator[str]:
        engine = EmbeddedEngine()

        async def query(request: Request) -> Response:
            if (await request.json()).get("context_allocation") == 0:
                refusal = {"error": "insufficient_funds", "detail": "Balance too low"}
                return JSONResponse(refusal, status_code=422)
            return await engine.handle_query(request)

        async def no_streaming(request: Request) -> Response:
            return JSONResponse({"detail": "Not Found"}, status_code=404)

        old_node = Starlette(
            routes=[
                Route("/api/v1/nwtn/query", query, methods=["POST"]),
                Route("/api/v1/stream", no_streaming, methods=["POST"]),
            ]
        )
        async with serve(old_node) as url:
            yield url

    @pytest.fixture
    def settings(self, settings: Settings, node_url: str) -> Settings:
        return settings.model_copy(update={"prsm_api_url": node_url})

    async def test_old_error_bodies_are_understood(self, ai_client: httpx.AsyncClient) -> None:
        response = await ai_client.post(
            "/ai/query", json=query_body("What is 1+1?", context_allocation=0)
        )

        assert response.status_code == 402
        assert response.json()["detail"] == "Balance too low"

    async def test_stream_falls_back_to_one_query(self, ai_client: httpx.AsyncClient) -> None:
        response = await ai_client.post("/ai/stream", json=query_body("What is 5-8?"))

        assert [kind for kind, _ in sse_events(response)] == ["start", "content", "end"]
        assert sse_events(response)[1][1]["content"] == "-3"
