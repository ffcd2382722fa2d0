"""Passwords and tokens never reach a log line or an error body."""

import json
import logging

import httpx
import pytest

from {{ cookiecutter.package_name }}.logs import JsonFormatter
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import add_user, login

PASSWORD = "plum-orbit-5529 is my secret"
SECRET = "plum-orbit-5529"


async def test_passwords_and_tokens_stay_out_of_logs_and_error_bodies(
    client: httpx.AsyncClient, services: Services, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await add_user(services, "carol", password=PASSWORD)

    accepted = await login(client, "carol", PASSWORD)
    refused = await login(client, "dave", PASSWORD)
    token = accepted.json()["access_token"]
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})
    forged = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}x"})

    assert accepted.status_code == 200
    assert refused.status_code == 401
    assert me.status_code == 200
    assert forged.status_code == 401
    lines = [JsonFormatter().format(record) for record in caplog.records]
    # Read as JSON: the lines are compact JSON (orjson) since the request line got cheaper.
    assert any(json.loads(line).get("path") == "/auth/token" for line in lines)
    assert [line for line in lines if SECRET in line or token in line] == []
    assert SECRET not in refused.text
    assert token not in forged.text
