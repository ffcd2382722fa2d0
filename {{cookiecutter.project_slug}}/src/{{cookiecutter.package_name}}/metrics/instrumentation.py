"""HTTP metrics for every request, labelled by route template, method and status class."""

from collections.abc import Callable

from fastapi import FastAPI
from prometheus_client import CollectorRegistry, GCCollector, ProcessCollector
from prometheus_fastapi_instrumentator import Instrumentator, metrics
from prometheus_fastapi_instrumentator.metrics import Info

from {{ cookiecutter.package_name }}.metrics.config import MetricsSettings
from {{ cookiecutter.package_name }}.metrics.router import METRICS_PATH, router

# Seconds, per route: from a health check up to a PRSM answer at its 30 s deadline.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# The label value of every request that matched no route.
UNMATCHED = "none"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

Recorder = Callable[[Info], None]


def instrument(app: FastAPI, settings: MetricsSettings) -> None:
    """Adds the HTTP metrics middleware and `/metrics`; with metrics off, neither."""
    if not settings.metrics_enabled:
        return
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    GCCollector(registry=registry)
    # Only requests and latency: the instrumentator's default set (size summaries, a second
    # latency histogram) costs more time per request than everything else it does.
    requests = metrics.requests(registry=registry)
    latency = metrics.latency(
        should_include_status=False, buckets=LATENCY_BUCKETS, registry=registry
    )
    Instrumentator(excluded_handlers=[f"^{METRICS_PATH}$"], registry=registry).add(
        _bounded(requests, latency)
    ).instrument(app)
    app.state.http_metrics = registry
    app.include_router(router)


def _bounded(*recorders: Recorder | None) -> Recorder:
    """Keeps label values to a fixed set, whatever the callers send.

    The instrumentator labels a request that only a trailing-slash redirect matched with its
    raw path (`/ai/jobs/<id>/`), and any method token with itself: both become one value.
    """
    # A recorder is None only when its metric was already registered: never in a new registry.
    active = [recorder for recorder in recorders if recorder is not None]

    def bounded(info: Info) -> None:
        if info.request.scope.get("route") is None:
            info.modified_handler = UNMATCHED
        if info.method not in _METHODS:
            info.method = "other"
        for record in active:
            record(info)

    return bounded
