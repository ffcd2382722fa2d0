import uuid

import httpx
import pytest

from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine
from tests.helpers import query_body


async def test_arithmetic_is_answered_exactly(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post("/ai/query", json=query_body("What is 2+2?"))

    assert response.status_code == 200
    body = response.json()
    assert body["answer"] == "4"
    assert body["quality_score"] == 100
    assert body["cost"] > 0
    assert body["processing_time"] >= 0
    assert body["query_id"].startswith("q_")


async def test_other_prompts_are_restated_and_labelled_not_ai(
    ai_client: httpx.AsyncClient,
) -> None:
    response = await ai_client.post("/ai/query", json=query_body("Summarise the news"))

    body = response.json()
    assert "not AI" in body["answer"]
    assert "Summarise the news" in body["answer"]
    assert body["quality_score"] is None


async def test_the_charge_reaches_the_prsm_ledger(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    response = await ai_client.post("/ai/query", json=query_body("What is 6*7?"))

    charged = response.json()["cost"]
    balances = [float(engine.balance(user)) for user in engine.users()]
    assert balances == [pytest.approx(100 - charged)]


async def test_same_session_and_prompt_is_charged_once(
    ai_client: httpx.AsyncClient, engine: EmbeddedEngine
) -> None:
    body = query_body("What is 3*3?", session_id=str(uuid.uuid4()))

    first = (await ai_client.post("/ai/query", json=body)).json()
    second = (await ai_client.post("/ai/query", json=body)).json()

    assert first["query_id"] == second["query_id"]
    assert first["session_id"] == body["session_id"]
    assert first["cost"] > 0
    assert second["cost"] == 0
    assert engine.queries_answered == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("prompt", ""),
        ("prompt", "x" * 16_001),
        ("context_allocation", -1),
        ("context_allocation", 10_001),
        ("session_id", "sess_abc123"),
    ],
)
async def test_invalid_input_is_a_422_naming_the_field(
    ai_client: httpx.AsyncClient, field: str, value: object
) -> None:
    body = {**query_body("What is 1+1?"), field: value}

    response = await ai_client.post("/ai/query", json=body)

    assert response.status_code == 422
    body = response.json()
    assert body["error_type"] == "validation_error"
    assert [error["loc"][-1] for error in body["detail"]] == [field]
    assert body["request_id"] == response.headers["X-Request-ID"]


async def test_a_body_that_is_not_json_is_a_422(ai_client: httpx.AsyncClient) -> None:
    response = await ai_client.post(
        "/ai/query", content=b"{not json", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 422


async def test_prompts_are_not_echoed_in_validation_errors(ai_client: httpx.AsyncClient) -> None:
    secret = "my-secret-prompt " * 1001

    response = await ai_client.post("/ai/query", json=query_body(secret))

    assert response.status_code == 422
    assert "my-secret-prompt" not in response.text
