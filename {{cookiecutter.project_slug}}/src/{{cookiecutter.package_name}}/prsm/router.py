from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.sse import EventSourceResponse, ServerSentEvent

from {{ cookiecutter.package_name }}.prsm.dependencies import CallerQuery, answerer_for
from {{ cookiecutter.package_name }}.prsm.errors import PRSMError
from {{ cookiecutter.package_name }}.prsm.schemas import ErrorBody, QueryResponse
from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent

router = APIRouter(prefix="/ai", tags=["ai"])

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    402: {"model": ErrorBody, "description": "Not enough FTNS for the query"},
    429: {"model": ErrorBody, "description": "Rate or quota limit reached; see Retry-After"},
    502: {"model": ErrorBody, "description": "PRSM answered something unusable"},
    503: {"model": ErrorBody, "description": "PRSM is unavailable; see Retry-After"},
    504: {"model": ErrorBody, "description": "PRSM did not answer in time"},
}


@router.post("/query", responses=ERROR_RESPONSES)
async def query(query: CallerQuery, request: Request) -> QueryResponse:
    """Ask PRSM one question and wait for the whole answer."""
    result = await answerer_for(request).query(query)
    return QueryResponse.model_validate(result)


@router.post("/stream", response_class=EventSourceResponse)
async def stream(query: CallerQuery, request: Request) -> AsyncIterator[ServerSentEvent]:
    """Ask PRSM and receive the answer as Server-Sent Events: start, content..., end or error.

    Every stream ends with an `end` or an `error` event, whatever happens upstream.
    """
    try:
        async for event in answerer_for(request).stream(query):
            yield _sse(event)
            if event.type in ("end", "error"):
                return
        final = StreamEvent(
            type="error", error_type="prsm_bad_gateway", message="PRSM ended the stream early"
        )
    except PRSMError as exc:
        final = StreamEvent(type="error", error_type=exc.error_type, message=exc.message)
    yield _sse(final)


def _sse(event: StreamEvent) -> ServerSentEvent:
    return ServerSentEvent(event=event.type, data=event.model_dump(exclude_none=True))
