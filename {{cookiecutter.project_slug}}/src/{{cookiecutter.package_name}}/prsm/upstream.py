"""The bottom of the query path: the embedded engine in-process, or a PRSM node over HTTP."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from {{ cookiecutter.package_name }}.prsm.answerer import Upstream
from {{ cookiecutter.package_name }}.prsm.config import PRSMSettings
from {{ cookiecutter.package_name }}.prsm.engine import EmbeddedEngine


@asynccontextmanager
async def open_upstream(settings: PRSMSettings) -> AsyncIterator[Upstream]:
    """With no `PRSM_API_URL`, the embedded engine answers in-process: no HTTP between the
    service and it. Otherwise the HTTP client talks to the node."""
    if not settings.prsm_api_url:
        yield EmbeddedEngine.from_settings(settings)
        return
    # Imported here: httpx costs start-up time, and only a service with a node needs it.
    from {{ cookiecutter.package_name }}.prsm.client import PRSMClient

    async with PRSMClient.open(settings) as client:
        yield client
