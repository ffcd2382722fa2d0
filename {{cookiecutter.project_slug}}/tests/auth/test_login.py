import asyncio

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.auth.security import Passwords
from {{ cookiecutter.package_name }}.auth.users import find_user, set_password_hash
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import TEST_PASSWORD, add_user, login


async def test_login_gives_a_bearer_token_for_the_user(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob", quota="12.5")

    response = await login(client, "bob")

    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "bearer"
    assert token["expires_in"] == settings.access_token_expire_minutes * 60
    me = await client.get("/auth/me", headers={"Authorization": f"Bearer {token['access_token']}"})
    assert me.status_code == 200
    assert me.json() == {"username": "bob", "quota": 12.5, "is_active": True}


async def test_a_wrong_password_is_a_401(client: httpx.AsyncClient, services: Services) -> None:
    await add_user(services, "bob")

    response = await login(client, "bob", "not the password")

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == "Incorrect username or password"
    assert response.json()["request_id"] == response.headers["X-Request-ID"]


async def test_an_unknown_user_looks_like_a_wrong_password(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_user(services, "bob")

    unknown = await login(client, "nobody")
    wrong = await login(client, "bob", "not the password")

    assert unknown.status_code == wrong.status_code == 401
    assert unknown.json()["detail"] == wrong.json()["detail"]
    assert unknown.headers["WWW-Authenticate"] == wrong.headers["WWW-Authenticate"]


async def test_an_unknown_user_costs_one_password_check_like_a_wrong_password(
    client: httpx.AsyncClient, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Response times must not tell which usernames exist: both paths run argon2 once."""
    await add_user(services, "bob")
    checks: list[str] = []
    verify = Passwords.verify

    async def counting_verify(
        self: Passwords, password: str, password_hash: str | None
    ) -> tuple[bool, str | None]:
        checks.append(password)
        return await verify(self, password, password_hash)

    monkeypatch.setattr(Passwords, "verify", counting_verify)

    await login(client, "nobody", "first")
    await login(client, "bob", "second")

    assert checks == ["first", "second"]


async def test_a_deactivated_user_cannot_log_in(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_user(services, "bob", active=False)

    response = await login(client, "bob")

    assert response.status_code == 403
    assert "access_token" not in response.text


async def test_the_password_comes_as_a_form_not_in_the_url(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_user(services, "bob")

    response = await client.post(
        "/auth/token", params={"username": "bob", "password": TEST_PASSWORD}
    )

    assert response.status_code == 422
    assert TEST_PASSWORD not in response.text


async def test_repeated_failures_lock_the_username(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")
    for _ in range(settings.login_max_failures):
        assert (await login(client, "bob", "guess")).status_code == 401

    locked = await login(client, "bob")

    assert locked.status_code == 429
    assert 0 < int(locked.headers["Retry-After"]) <= settings.login_failure_window_seconds
    assert locked.json()["error_type"] == "http_error"
    assert "access_token" not in locked.text


async def test_parallel_guesses_cannot_pass_the_limit(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")

    responses = await asyncio.gather(*(login(client, "bob", f"guess {n}") for n in range(20)))

    statuses = [response.status_code for response in responses]
    assert statuses.count(401) == settings.login_max_failures
    assert statuses.count(429) == 20 - settings.login_max_failures


async def test_a_successful_login_resets_the_count(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")
    for _ in range(2):
        for _ in range(settings.login_max_failures - 1):
            assert (await login(client, "bob", "guess")).status_code == 401

        assert (await login(client, "bob")).status_code == 200


async def test_a_locked_username_does_not_lock_others(
    client: httpx.AsyncClient, services: Services, settings: Settings
) -> None:
    await add_user(services, "bob")
    await add_user(services, "carol")
    for _ in range(settings.login_max_failures):
        await login(client, "bob", "guess")

    assert (await login(client, "carol")).status_code == 200


class TestAddressLimit:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"login_max_failures_per_address": 3})

    async def test_repeated_failures_from_one_address_lock_it(
        self, app: FastAPI, services: Services, settings: Settings
    ) -> None:
        await add_user(services, "carol")
        guesser = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("203.0.113.7", 4000)),
            base_url="http://test",
        )
        neighbour = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, client=("198.51.100.9", 4000)),
            base_url="http://test",
        )
        async with guesser, neighbour:
            # A different username each time: only the address counter can stop this.
            for attempt in range(settings.login_max_failures_per_address):
                assert (await login(guesser, f"user{attempt}", "guess")).status_code == 401

            from_guesser = await login(guesser, "carol")
            from_neighbour = await login(neighbour, "carol")

        assert from_guesser.status_code == 429
        assert int(from_guesser.headers["Retry-After"]) > 0
        assert from_neighbour.status_code == 200


async def test_an_outdated_hash_is_renewed_at_login(
    client: httpx.AsyncClient, services: Services
) -> None:
    await add_user(services, "bob")
    older = await Passwords(time_cost=2, memory_cost_kib=16, parallelism=1).hash(TEST_PASSWORD)
    await set_password_hash(services.sessions, "bob", older)

    assert (await login(client, "bob")).status_code == 200

    user = await find_user(services.sessions, "bob")
    assert user is not None
    assert user.password_hash != older
    assert (await login(client, "bob")).status_code == 200
