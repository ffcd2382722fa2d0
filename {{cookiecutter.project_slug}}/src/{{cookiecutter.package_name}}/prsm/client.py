"""An async PRSM client speaking the node's wire protocol over HTTP."""

import asyncio
import functools
import logging
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Self

import httpx
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.config import PRSMSettings
from {{ cookiecutter.package_name }}.prsm.errors import (
    NO_STREAMING_STATUSES,
    PRSMBadGatewayError,
    PRSMError,
    PRSMTimeoutError,
    PRSMUnavailableError,
    error_from_node,
)
from {{ cookiecutter.package_name }}.prsm.wire import PRSMResponse, StreamEvent

QUERY_PATH = "/api/v1/nwtn/query"
STREAM_PATH = "/api/v1/stream"
HEALTH_PATH = "/health"

logger = logging.getLogger(__name__)


@functools.cache
def verified_tls() -> ssl.SSLContext:
    """The TLS context httpx makes by default (certifi's roots, or SSL_CERT_FILE/SSL_CERT_DIR),
    made once per process: loading the roots takes tens of milliseconds, and a process may
    open the client many times."""
    return httpx.create_ssl_context()


class PRSMClient:
    """A PRSM node over HTTP: what the service answers with when `PRSM_API_URL` is set."""

    def __init__(
        self, http: httpx.AsyncClient, *, timeout_seconds: float, unavailable_retry_after: int
    ) -> None:
        self._http = http
        self._timeout = timeout_seconds
        self._unavailable_retry_after = unavailable_retry_after

    @classmethod
    @asynccontextmanager
    async def open(cls, settings: PRSMSettings) -> AsyncIterator[Self]:
        transport = httpx.AsyncHTTPTransport(
            verify=verified_tls(),
            limits=httpx.Limits(
                max_connections=settings.prsm_max_connections,
                max_keepalive_connections=settings.prsm_max_connections,
            ),
        )
        headers = {"Accept": "application/json"}
        api_key = settings.prsm_api_key.get_secret_value()
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        timeout = httpx.Timeout(
            settings.prsm_timeout_seconds, connect=settings.prsm_connect_timeout_seconds
        )
        async with httpx.AsyncClient(
            base_url=settings.prsm_api_url, transport=transport, headers=headers, timeout=timeout
        ) as http:
            yield cls(
                http,
                timeout_seconds=settings.prsm_timeout_seconds,
                unavailable_retry_after=settings.prsm_unavailable_retry_after_seconds,
            )

    async def query(self, query: PRSMQuery) -> QueryResult:
        started = time.perf_counter()
        async with self._deadline():
            response = await self._http.post(
                QUERY_PATH, json=query.payload(), headers=_request_headers(query)
            )
        if response.status_code >= 300:
            raise self._error_from(response)
        try:
            node_response = PRSMResponse.model_validate_json(response.content)
        except ValidationError as exc:
            raise PRSMBadGatewayError("PRSM answered with a payload of the wrong shape") from exc
        elapsed = time.perf_counter() - started
        # Debug only: the request line already says how the request went. Prompts are never
        # logged, only their size; user ids stay out of these lines too.
        logger.debug(
            "prsm query",
            extra={
                "prompt_chars": len(query.prompt),
                "ftns_charged": node_response.ftns_charged,
                "duration_ms": round(elapsed * 1000, 2),
            },
        )
        return _result_from(node_response, query, elapsed)

    async def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        request = self._http.build_request(
            "POST", STREAM_PATH, json=query.payload(), headers=_request_headers(query)
        )
        async with self._deadline():
            response = await self._http.send(request, stream=True)
        try:
            if response.status_code in NO_STREAMING_STATUSES:
                fallback = True
            elif response.status_code >= 300:
                async with self._deadline():
                    await response.aread()
                raise self._error_from(response)
            else:
                fallback = False
                # No overall deadline here: a stream may run long; httpx bounds each read.
                async with self._transport_errors_mapped():
                    async for line in response.aiter_lines():
                        if line.startswith("data:"):
                            yield _parse_event(line.removeprefix("data:").strip())
        finally:
            await response.aclose()
        if fallback:
            result = await self.query(query)
            yield StreamEvent(type="start", query_id=result.query_id)
            yield StreamEvent(type="content", content=result.final_answer)
            yield StreamEvent(
                type="end", final_answer=result.final_answer, ftns_charged=result.ftns_charged
            )

    async def ping(self) -> bool:
        """True when PRSM says it is healthy (a degraded node still answers, so it counts)."""
        try:
            async with self._deadline():
                response = await self._http.get(HEALTH_PATH)
            status = response.json().get("status") if response.status_code == 200 else None
        except (PRSMError, httpx.HTTPError, ValueError, AttributeError):
            return False
        return status in ("healthy", "degraded")

    @asynccontextmanager
    async def _deadline(self) -> AsyncIterator[None]:
        """One deadline for a whole exchange (httpx's own timeouts are per read or write)."""
        async with self._transport_errors_mapped(), asyncio.timeout(self._timeout):
            yield

    @asynccontextmanager
    async def _transport_errors_mapped(self) -> AsyncIterator[None]:
        try:
            yield
        except (TimeoutError, httpx.TimeoutException) as exc:
            if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
                raise self._unavailable("PRSM did not accept a connection in time") from exc
            raise PRSMTimeoutError.after(self._timeout) from exc
        except httpx.TransportError as exc:
            raise self._unavailable("PRSM is unreachable") from exc

    def _unavailable(self, message: str) -> PRSMUnavailableError:
        return PRSMUnavailableError(message, retry_after=self._unavailable_retry_after)

    def _error_from(self, response: httpx.Response) -> PRSMError:
        return error_from_node(
            response.status_code,
            response.content,
            response.headers.get("Retry-After"),
            self._unavailable_retry_after,
        )


def _request_headers(query: PRSMQuery) -> dict[str, str]:
    return {"X-Request-ID": query.request_id} if query.request_id else {}


def _result_from(response: PRSMResponse, query: PRSMQuery, elapsed: float) -> QueryResult:
    metadata = response.metadata
    processing_time = metadata.get("processing_time")
    return QueryResult(
        query_id=str(metadata.get("query_id") or query.request_id or ""),
        final_answer=response.final_answer,
        ftns_charged=response.ftns_charged,
        processing_time=(
            float(processing_time) if isinstance(processing_time, int | float) else elapsed
        ),
        quality_score=(
            None if response.confidence_score is None else round(100 * response.confidence_score)
        ),
        session_id=response.session_id,
        metadata=metadata,
    )


def _parse_event(data: str) -> StreamEvent:
    try:
        return StreamEvent.model_validate_json(data)
    except ValidationError as exc:
        raise PRSMBadGatewayError("PRSM streamed an event of the wrong shape") from exc
