import base64
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import jwt
import pytest

from {{ cookiecutter.package_name }}.auth.security import create_access_token
from {{ cookiecutter.package_name }}.auth.users import set_active
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import add_user, login


def _claims(username: str = "bob", **changes: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    claims = {"sub": username, "iat": now, "exp": now + timedelta(minutes=5), **changes}
    return {name: value for name, value in claims.items() if value is not None}


def _signed(settings: Settings, claims: dict[str, Any], algorithm: str = "HS256") -> str:
    return jwt.encode(claims, settings.secret_key.get_secret_value(), algorithm=algorithm)


def _unsigned(claims: dict[str, Any]) -> str:
    """A token with `alg: none` and no signature, built by hand as an attacker would."""

    def part(value: dict[str, Any]) -> str:
        raw = json.dumps(value, default=lambda moment: int(moment.timestamp())).encode()
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    return f"{part({'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def _expired_claims() -> dict[str, Any]:
    an_hour_ago = datetime.now(UTC) - timedelta(hours=1)
    return _claims(iat=an_hour_ago - timedelta(minutes=30), exp=an_hour_ago)


def _tampered(settings: Settings) -> str:
    """A valid token for bob whose payload now names alice, the signature left as it was."""
    header, _, signature = _signed(settings, _claims()).split(".")
    forged = _signed(settings, _claims("alice")).split(".")[1]
    return f"{header}.{forged}.{signature}"


BAD_TOKENS: dict[str, Callable[[Settings], str]] = {
    "malformed": lambda settings: "not-a-jwt",
    "expired": lambda settings: _signed(settings, _expired_claims()),
    "tampered": _tampered,
    "another key": lambda settings: jwt.encode(_claims(), "k" * 64, algorithm="HS256"),
    "alg none": lambda settings: _unsigned(_claims()),
    "another algorithm": lambda settings: _signed(settings, _claims(), algorithm="HS512"),
    "no expiry": lambda settings: _signed(settings, _claims(exp=None)),
    "no subject": lambda settings: _signed(settings, _claims(sub=None)),
    "unknown user": lambda settings: _signed(settings, _claims("nobody")),
}


@pytest.mark.parametrize("make_token", BAD_TOKENS.values(), ids=BAD_TOKENS.keys())
async def test_a_bad_token_is_a_401(
    client: httpx.AsyncClient,
    services: Services,
    settings: Settings,
    make_token: Callable[[Settings], str],
) -> None:
    await add_user(services, "bob")
    await add_user(services, "alice")

    response = await client.get(
        "/auth/me", headers={"Authorization": f"Bearer {make_token(settings)}"}
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["error_type"] == "http_error"


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer"}, {"Authorization": "Basic Ym9iOnNlY3JldA=="}],
    ids=["missing", "empty", "not bearer"],
)
async def test_no_bearer_token_is_a_401(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    response = await client.get("/auth/me", headers=headers)

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_a_good_token_signed_by_the_service_is_accepted(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")
    token, _ = create_access_token("bob", settings)

    response = await client.get("/auth/me", headers={"Authorization": f"Bearer {token}"})

    assert response.status_code == 200
    assert response.json()["username"] == "bob"


async def test_deactivating_a_user_revokes_their_tokens_at_once(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_user(services, "bob")
    token = (await login(client, "bob")).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    assert (await client.get("/auth/me", headers=headers)).status_code == 200

    await set_active(services.sessions, "bob", active=False)

    response = await client.get("/auth/me", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")


async def test_tokens_carry_subject_issue_time_and_expiry(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")

    token = (await login(client, "bob")).json()["access_token"]

    claims = jwt.decode(token, settings.secret_key.get_secret_value(), algorithms=["HS256"])
    assert claims["sub"] == "bob"
    assert claims["exp"] - claims["iat"] == settings.access_token_expire_minutes * 60
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
