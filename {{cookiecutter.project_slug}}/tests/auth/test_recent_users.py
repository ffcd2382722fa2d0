"""The AI routes read the user behind a token at most USER_CACHE_SECONDS old.

What a user's record says reaches every worker within that bound: a deactivation and a quota
set elsewhere (here by the user store's own functions, which tell no cache, as the CLI in
another process would not). /auth/me, and the quota itself, always read the database.
"""

import asyncio
from decimal import Decimal

import httpx
import pytest
from fastapi import FastAPI

from {{ cookiecutter.package_name }}.auth.users import set_active, set_quota
from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.services import Services
from tests.auth.helpers import add_user, quota_left, signed_in
from tests.helpers import query_body

BOUND_SECONDS = 0.1


async def _ask(client: httpx.AsyncClient) -> httpx.Response:
    return await client.post("/ai/query", json=query_body("What is 1+1?"))


class TestWithinTheBound:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"user_cache_seconds": BOUND_SECONDS})

    async def test_a_deactivated_user_is_refused_once_the_bound_has_passed(
        self, app: FastAPI, services: Services
    ) -> None:
        await add_user(services, "bob")
        async with signed_in(app, "bob") as bob:
            before = await _ask(bob)
            await set_active(services.sessions, "bob", active=False)
            # Within the bound the AI routes may still let bob in; /auth/me never does.
            me = await bob.get("/auth/me")
            await asyncio.sleep(BOUND_SECONDS)
            after = await _ask(bob)

        assert before.status_code == 200
        assert me.status_code == 401
        assert after.status_code == 401
        assert after.headers["WWW-Authenticate"].startswith("Bearer")

    async def test_a_quota_set_to_nothing_is_refused_once_the_bound_has_passed(
        self, app: FastAPI, services: Services
    ) -> None:
        await add_user(services, "bob")
        async with signed_in(app, "bob") as bob:
            before = await _ask(bob)
            await set_quota(services.sessions, "bob", Decimal(0))
            await asyncio.sleep(BOUND_SECONDS)
            after = await _ask(bob)

        assert before.status_code == 200
        assert after.status_code == 429
        assert after.json()["error_type"] == "quota_exceeded"

    async def test_the_process_knows_its_own_charges_at_once(
        self, app: FastAPI, services: Services
    ) -> None:
        # Within the bound, and with no read of the user in between: the quota stage tells the
        # cache what each charge left.
        await add_user(services, "bob", quota="1")
        async with signed_in(app, "bob") as bob:
            first = await _ask(bob)
            left = await quota_left(bob)
            second = await bob.post("/ai/query", json=query_body("What is 1+2?"))

        assert first.status_code == 200
        assert left < 1
        assert second.status_code == 429


class TestReadEveryTime:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"user_cache_seconds": 0})

    async def test_a_deactivated_user_is_refused_at_once(
        self, app: FastAPI, services: Services
    ) -> None:
        await add_user(services, "bob")
        async with signed_in(app, "bob") as bob:
            before = await _ask(bob)
            await set_active(services.sessions, "bob", active=False)
            after = await _ask(bob)

        assert before.status_code == 200
        assert after.status_code == 401
