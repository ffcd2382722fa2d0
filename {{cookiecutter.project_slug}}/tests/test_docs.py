"""/docs and /redoc come with their assets from the service itself, under a policy that allows
nothing else; the template's own tests open them in a real browser."""

import re

import httpx
import pytest

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.docs import REDOC_LOGO_URL

PAGES = ["/docs", "/redoc"]
# Every src= and href= of a page.
_REFERENCE = re.compile(r"""(?:src|href)=["']([^"']+)["']""")


def directives(policy: str) -> dict[str, list[str]]:
    return {
        name: sources
        for name, *sources in (part.split() for part in policy.split(";") if part.strip())
    }


@pytest.mark.parametrize("page", PAGES)
async def test_a_docs_page_loads_everything_from_the_service(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)

    assert response.status_code == 200
    references = _REFERENCE.findall(response.text)
    assert references, response.text
    for reference in references:
        assert reference.startswith("/docs/assets/"), reference
        asset = await client.get(reference)
        assert asset.status_code == 200, reference
        assert asset.headers["content-type"].split(";")[0] in {
            "text/javascript",
            "text/css",
            "image/png",
        }, reference


@pytest.mark.parametrize("page", PAGES)
async def test_a_docs_page_allows_only_its_own_scripts(
    client: httpx.AsyncClient, page: str
) -> None:
    response = await client.get(page)
    policy = directives(response.headers["Content-Security-Policy"])

    assert policy["default-src"] == ["'none'"]
    scripts = policy["script-src"]
    assert scripts[0] == "'self'"
    assert "'unsafe-inline'" not in scripts
    assert "'unsafe-eval'" not in scripts
    # One hash for each inline script, none for anything else.
    inline = re.findall(r"<script>", response.text)
    assert len(scripts) == 1 + len(inline)
    assert all(source.startswith("'sha256-") for source in scripts[1:])
    assert policy["frame-ancestors"] == ["'none'"]


async def test_json_answers_may_load_nothing(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    policy = directives(response.headers["Content-Security-Policy"])
    assert policy == {"default-src": ["'none'"], "frame-ancestors": ["'none'"]}


async def test_redoc_is_served_without_its_logo_from_a_cdn(client: httpx.AsyncClient) -> None:
    bundle = await client.get("/docs/assets/redoc.standalone.js")

    assert bundle.status_code == 200
    assert len(bundle.content) > 100_000
    assert REDOC_LOGO_URL not in bundle.text


def test_docs_are_off_by_default_in_production(settings: Settings) -> None:
    production = {**settings.model_dump(exclude={"docs_enabled"}), "environment": "production"}

    assert Settings.model_validate(production).docs_enabled is False
    assert Settings.model_validate({**production, "docs_enabled": True}).docs_enabled is True


class TestDocsOff:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:
        return settings.model_copy(update={"docs_enabled": False})

    async def test_no_page_schema_or_asset_is_served(self, client: httpx.AsyncClient) -> None:
        for path in [*PAGES, "/openapi.json", "/docs/assets/swagger-ui-bundle.js"]:
            assert (await client.get(path)).status_code == 404, path
