import httpx

from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import query_body, sse_events


async def test_stream_sends_start_content_and_end(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/stream", json=query_body("What is 12/4?"))

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = sse_events(response)
    kinds = [kind for kind, _ in events]
    assert kinds[0] == "start"
    assert kinds[-1] == "end"
    assert set(kinds[1:-1]) == {"content"}
    content = "".join(data["content"] for kind, data in events if kind == "content")
    assert content.strip() == "3"
    assert events[-1][1]["final_answer"] == "3"
    assert events[-1][1]["ftns_charged"] > 0


async def test_upstream_failure_ends_the_stream_with_an_error_event(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    engine.faults.fail_next = 1
    engine.faults.fail_status = 503

    response = await ai_client.post("/ai/stream", json=query_body("What is 1+1?"))

    events = sse_events(response)
    assert events == [
        (
            "error",
            {"type": "error", "error_type": "prsm_unavailable", "message": "Injected fault"},
        )
    ]


async def test_stream_input_is_validated_before_streaming(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/stream", json=query_body(""))

    assert response.status_code == 422
