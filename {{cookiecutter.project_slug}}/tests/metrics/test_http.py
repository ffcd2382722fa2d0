import httpx

from tests.helpers import CALLER_FIELDS, query_body
from tests.metrics.scraping import scrape


async def test_requests_are_counted_by_route_method_and_status_class(
    ai_client: httpx.AsyncClient,
) -> None:
    await ai_client.get("/health")
    await ai_client.get("/health")
    await ai_client.post("/ai/query", json=query_body(""))

    metrics = await scrape(ai_client)

    assert metrics.value("http_requests_total", handler="/health", method="GET") == 2
    assert metrics.value("http_requests_total", handler="/health", status="2xx") == 2
    assert metrics.value("http_requests_total", handler="/ai/query", status="4xx") == 1
    assert metrics.value("http_request_duration_seconds_count", handler="/health") == 2
    assert metrics.value("http_request_duration_seconds_bucket", handler="/health", le="+Inf") == 2


async def test_unmatched_paths_share_one_label_value(ai_client: httpx.AsyncClient) -> None:
    await ai_client.get("/no/such/page")
    await ai_client.get("/wp-login.php")
    await ai_client.get("/health/")  # answered by a redirect to /health

    metrics = await scrape(ai_client)

    assert metrics.value("http_requests_total", handler="none", status="4xx") == 2
    assert metrics.value("http_requests_total", handler="none", status="3xx") == 1
    assert metrics.label_values("http_requests_total", "handler") == {"none"}


async def test_many_paths_methods_and_users_add_no_series(ai_client: httpx.AsyncClient) -> None:
    async def round_of_traffic(names: list[str]) -> None:
        for name in names:
            await ai_client.get(f"/unknown/{name}")
            await ai_client.get(f"/health/{name}/")
            # With jobs on, a route with a parameter: as is, and redirected for its slash.
            await ai_client.get(f"/ai/jobs/{name}")
            await ai_client.get(f"/ai/jobs/{name}/")
            await ai_client.request(name.upper().replace("-", ""), "/health")
            # Each a user of its own where the body names the user (with auth, the token does).
            caller = dict.fromkeys(CALLER_FIELDS, name)
            prompt = f"Tell {name} what 1+{len(name)} is"
            await ai_client.post("/ai/query", json=query_body(prompt, **caller))

    await round_of_traffic(["user-warmup"])
    before = (await scrape(ai_client)).series()
    names = [f"user-{i}" for i in range(40)]
    await round_of_traffic(names)
    after = await scrape(ai_client)

    assert after.series() == before
    assert after.value("prsm_queries_total") == 41
    label_values = {value for _, labels in after.series() for _, value in labels}
    assert not any("user" in value.lower() for value in label_values)
