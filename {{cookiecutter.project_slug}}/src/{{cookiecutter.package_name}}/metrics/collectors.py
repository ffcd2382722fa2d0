"""The service's own collectors: one `Metrics` per process, in a registry of its own.

A registry per instance (not prometheus_client's global one) lets tests build several apps in
one process. With `PROMETHEUS_MULTIPROC_DIR` set, prometheus_client keeps every value in a file
of that directory instead, and `/metrics` adds up the files of all processes.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Self

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.multiprocess import mark_process_dead

from {{ cookiecutter.package_name }}.prsm.errors import (
    InsufficientFundsError,
    PRSMBadGatewayError,
    PRSMError,
    PRSMInvalidRequestError,
    PRSMRateLimitError,
    PRSMTimeoutError,
    PRSMUnavailableError,
    SafetyViolationError,
)

OK = "ok"
# The caller went away before PRSM answered, or the service failed in an unexpected way.
CANCELLED = "cancelled"
INTERNAL_ERROR = "internal_error"
ERROR_OUTCOMES = frozenset(
    error.error_type
    for error in (
        PRSMError,
        PRSMBadGatewayError,
        PRSMUnavailableError,
        PRSMTimeoutError,
        PRSMRateLimitError,
        InsufficientFundsError,
        PRSMInvalidRequestError,
        SafetyViolationError,
    )
)
OUTCOMES = (OK, *sorted(ERROR_OUTCOMES), CANCELLED, INTERNAL_ERROR)

# Seconds: from an embedded answer in milliseconds up to the default 30 s PRSM deadline.
QUERY_DURATION_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def multiprocess_mode() -> bool:
    """What prometheus_client itself checks (at import) to keep its values in files."""
    return "PROMETHEUS_MULTIPROC_DIR" in os.environ


class Metrics:
    """Every collector of the query path. Labels hold fixed words only: never a user, a prompt
    or an id, so the number of series stays what it is on the first day."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.prsm_queries = Counter(
            "prsm_queries",
            "Calls that reached PRSM, by outcome: ok or the service's error type.",
            ["outcome"],
            registry=registry,
        )
        self.prsm_query_duration = Histogram(
            "prsm_query_duration_seconds",
            "Time PRSM took for a call, whatever its outcome (a stream: until its last event).",
            buckets=QUERY_DURATION_BUCKETS,
            registry=registry,
        )
        self.prsm_ftns_charged = Counter(
            "prsm_ftns_charged",
            "FTNS that PRSM charged for the calls it answered.",
            registry=registry,
        )
        self.prsm_queries_in_flight = Gauge(
            "prsm_queries_in_flight",
            "Calls to PRSM waiting for their answer.",
            registry=registry,
            multiprocess_mode="livesum",
        )
        # Every outcome is a series from the start, so rates and alerts see zeros, not gaps.
        for outcome in OUTCOMES:
            self.prsm_queries.labels(outcome)

    @classmethod
    @contextmanager
    def open(cls) -> Iterator[Self]:
        try:
            yield cls(CollectorRegistry())
        finally:
            if multiprocess_mode():
                # This process's live gauges leave the sums; its counters stay counted.
                mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]
