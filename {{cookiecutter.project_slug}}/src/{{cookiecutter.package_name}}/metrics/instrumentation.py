"""HTTP metrics for every request, labelled by route template, method and status class.

A pure ASGI middleware: the route a request matched is in its scope once the app has answered,
so nothing is matched twice, and each label set's series is looked up once per process.
"""

import time

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, Counter, GCCollector, Histogram, ProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.metrics.config import MetricsSettings
from {{ cookiecutter.package_name }}.metrics.router import METRICS_PATH, router

# Seconds, per route: from a health check up to a PRSM answer at its 30 s deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The label value of every request that matched no route (a redirect for a trailing slash
# included: its raw path would be a new series per path).
UNMATCHED = "none"
# Any other method token a client sends is counted as "other".
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def instrument(app: FastAPI, settings: MetricsSettings) -> None:
    """Adds the HTTP metrics middleware and `/metrics`; with metrics off, neither."""
    if not settings.metrics_enabled:
        return
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    app.add_middleware(HTTPMetricsMiddleware, registry=registry, excluded=frozenset({METRICS_PATH}))
    app.state.http_metrics = registry
    app.include_router(router)


class HTTPMetricsMiddleware:
    def __init__(self, app: ASGIApp, registry: CollectorRegistry, excluded: frozenset[str]) -> None:
        self.app = app
        self._excluded = excluded
        self._requests = Counter(
            "http_requests",
            "Requests answered, by method, status class and route template.",
            ["method", "status", "handler"],
            registry=registry,
        )
        self._latency = Histogram(
            "http_request_duration_seconds",
            "Time to answer a request, by method and route template.",
            ["method", "handler"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        # Each label set's children, found once: `labels()` takes a lock and builds a key.
        self._counted: dict[tuple[str, str, str], tuple[Counter, Histogram]] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            route = scope.get("route")
            handler: str = getattr(route, "path", UNMATCHED)
            if handler not in self._excluded:
                method = scope["method"] if scope["method"] in _METHODS else "other"
                requests, latency = self._series(method, f"{status // 100}xx", handler)
                requests.inc()
                latency.observe(time.perf_counter() - started)

    def _series(self, method: str, status: str, handler: str) -> tuple[Counter, Histogram]:
        key = (method, status, handler)
        series = self._counted.get(key)
        if series is None:
            series = self._counted[key] = (
                self._requests.labels(method, status, handler),
                self._latency.labels(method, handler),
            )
        return series
