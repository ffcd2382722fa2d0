import httpx


async def test_liveness(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_ready_when_every_service_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/health/ready")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert set(body["checks"].values()) == {"ok"}
    assert "prsm" in body["checks"]


async def test_request_id_is_echoed_or_generated(client: httpx.AsyncClient) -> None:
    echoed = await client.get("/health", headers={"X-Request-ID": "trace-42"})
    generated = await client.get("/health")
    injected = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})

    assert echoed.headers["X-Request-ID"] == "trace-42"
    assert len(generated.headers["X-Request-ID"]) == 32
    assert injected.headers["X-Request-ID"] != "bad id\twith spaces"


async def test_openapi_lists_the_ai_routes(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]

    assert {"/ai/query", "/ai/stream", "/health", "/health/ready"} <= set(paths)
