"""The stage right above the PRSM client: every call that reaches PRSM is counted and timed."""

import asyncio
import time
from collections.abc import AsyncIterator

from {{ cookiecutter.package_name }}.metrics.collectors import (
    CANCELLED,
    ERROR_OUTCOMES,
    INTERNAL_ERROR,
    OK,
    Metrics,
)
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.errors import PRSMBadGatewayError, PRSMError
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent


class MeteredAnswerer:
    def __init__(self, answerer: Answerer, metrics: Metrics) -> None:
        self._answerer = answerer
        self._metrics = metrics

    async def query(self, query: PRSMQuery) -> QueryResult:
        call = _Call(self._metrics)
        try:
            result = await self._answerer.query(query)
        except BaseException as exc:
            call.finish(_outcome_of(exc))
            raise
        call.finish(OK, result.ftns_charged)
        return result

    async def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        # Counted when the last event goes by, before the caller sees it.
        call = _Call(self._metrics)
        try:
            async for event in self._answerer.stream(query):
                if event.type == "end":
                    call.finish(OK, event.ftns_charged or 0.0)
                elif event.type == "error":
                    call.finish(_known_error(event.error_type))
                yield event
        except BaseException as exc:
            call.finish(_outcome_of(exc))
            raise
        # PRSM closed the stream without a last event: the caller gets a bad-gateway error.
        call.finish(PRSMBadGatewayError.error_type)


class _Call:
    """One call in flight; `finish` records it once, whichever way it ends."""

    def __init__(self, metrics: Metrics) -> None:
        self._metrics = metrics
        self._started = time.perf_counter()
        self._finished = False
        metrics.prsm_queries_in_flight.inc()

    def finish(self, outcome: str, ftns_charged: float = 0.0) -> None:
        if self._finished:
            return
        self._finished = True
        metrics = self._metrics
        metrics.prsm_queries_in_flight.dec()
        metrics.prsm_query_duration.observe(time.perf_counter() - self._started)
        metrics.prsm_queries.labels(outcome).inc()
        if ftns_charged > 0:
            metrics.prsm_ftns_charged.inc(ftns_charged)


def _outcome_of(exc: BaseException) -> str:
    if isinstance(exc, PRSMError):
        return _known_error(exc.error_type)
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return CANCELLED
    return INTERNAL_ERROR


def _known_error(error_type: str | None) -> str:
    """An error type as a label value: a stream's error event carries PRSM's own words, which
    are not ours to turn into series."""
    return error_type if error_type in ERROR_OUTCOMES else PRSMError.error_type
