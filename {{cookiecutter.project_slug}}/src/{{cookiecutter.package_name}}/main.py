"""The app factory: `uvicorn --factory {{ cookiecutter.package_name }}.main:create_app`."""

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.telemetry import TelemetryConfig

from {{ cookiecutter.package_name }}.api import ROUTERS
{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.database import install_database_error_handlers
{% endif %}
from {{ cookiecutter.package_name }}.config import Settings, load_settings
from {{ cookiecutter.package_name }}.docs import install_docs
from {{ cookiecutter.package_name }}.errors import install_error_handlers
from {{ cookiecutter.package_name }}.logs import configure_logging
{% if cookiecutter.use_prometheus %}
from {{ cookiecutter.package_name }}.metrics.instrumentation import instrument
{% endif %}
from {{ cookiecutter.package_name }}.middleware import RequestMiddleware
from {{ cookiecutter.package_name }}.services import open_services

# New objects that make the garbage collector look through the youngest generation (CPython's
# default: 2,000; see the lifespan).
YOUNG_COLLECTION_THRESHOLD = 10_000
# FastAPI's OpenTelemetry support, unless TELEMETRY_ENABLED: see config.py.
TELEMETRY_OFF: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    configure_logging(settings.log_level)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_services(settings) as services:
            app.state.services = services
            # What start-up made lives as long as the process: the garbage collector need not
            # look through it again, which would pause every request in flight.
            gc.freeze()
            # The requests in flight hold thousands of young objects between them; at the
            # default threshold the collector looks through all of them every few requests
            # (a tenth of the CPU time of a query at 64 connections). Cycles are still
            # collected, less often.
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
            yield

    app = FastAPI(
        title="{{ cookiecutter.project_name }}",
        version="{{ cookiecutter.version }}",
        description="{{ cookiecutter.description }}",
        debug=settings.debug,
        lifespan=lifespan,
        telemetry=None if settings.telemetry_enabled else TELEMETRY_OFF,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # Served by docs.py, with their assets, instead of FastAPI's pages that use a CDN.
        docs_url=None,
        redoc_url=None,
    )
    if settings.cors_allow_origins:
        # Without an origin to allow, browsers are refused by their own same-origin policy.
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_allow_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Retry-After"],
        )
    # Added last runs first: the request id exists before anything else can answer.
    app.add_middleware(
        RequestMiddleware,
        max_body_bytes=settings.max_request_body_bytes,
        max_header_bytes=settings.max_request_header_bytes,
    )
    install_error_handlers(app)
{% if cookiecutter.use_auth %}
    install_database_error_handlers(app)
{% endif %}
    for router in ROUTERS:
        app.include_router(router)
    # After the API's routes: FastAPI tries every route in order, and these are rarely asked.
    install_docs(app)
{% if cookiecutter.use_prometheus %}
    instrument(app, settings)
{% endif %}
    return app
