"""What every stage of the query path speaks: a query in, a result (or a stream of events) out.

The PRSM client answers queries itself; each enabled feature wraps the stage below it
(metrics, cache, quota), and `services.py` stacks them.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol
from uuid import UUID

from {{ cookiecutter.package_name }}.prsm.wire import StreamEvent


@dataclass(frozen=True, slots=True)
class PRSMQuery:
    user_id: str
    prompt: str
    context_allocation: int | None = None
    session_id: UUID | None = None
    request_id: str | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {"user_id": self.user_id, "prompt": self.prompt}
        if self.context_allocation is not None:
            body["context_allocation"] = self.context_allocation
        if self.session_id is not None:
            body["session_id"] = str(self.session_id)
        return body


@dataclass(frozen=True, slots=True)
class QueryResult:
    query_id: str
    final_answer: str
    ftns_charged: float
    processing_time: float
    quality_score: int | None
    session_id: UUID | None = None
    from_cache: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)


class Answerer(Protocol):
    async def query(self, query: PRSMQuery) -> QueryResult: ...

    def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]: ...


class Upstream(Answerer, Protocol):
    """The bottom stage, which asks PRSM itself, and tells readiness whether it can."""

    async def ping(self) -> bool: ...
