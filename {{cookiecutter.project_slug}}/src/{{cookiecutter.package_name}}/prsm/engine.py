"""An embedded, deterministic stand-in for a PRSM node.

It is not AI and says so: it evaluates arithmetic, otherwise restates the prompt, and labels
every answer `"engine": "embedded"`. It keeps a per-user FTNS ledger like the node (welcome
grant, a price per token, the allocation cap, one charge per session and input), and can inject
latency and faults so that load and failure tests need no node either.

The service asks it in-process, as the bottom stage of its query path (`query`, `stream`).
`app` serves the same engine over HTTP with the node's wire protocol, for the HTTP client's
tests and for anyone who wants a node to point `PRSM_API_URL` at.
"""

import ast
import asyncio
import functools
import json
import operator
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Self
from uuid import UUID

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from {{ cookiecutter.package_name }}.ids import unique_hex
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery, QueryResult
from {{ cookiecutter.package_name }}.prsm.config import PRSMSettings
from {{ cookiecutter.package_name }}.prsm.errors import PRSMTimeoutError, error_from_node
from {{ cookiecutter.package_name }}.prsm.wire import NodeError, PRSMResponse, StreamEvent, UserInput

WELCOME_GRANT = Decimal("100")
PRICE_PER_TOKEN = Decimal("0.01")
_TOKEN = re.compile(r"\w+|[^\w\s]")
_ARITHMETIC = re.compile(r"[-+*/%().\d\s]*\d[-+*/%().\d\s]*")
_OPERATORS: dict[type, Callable[..., int | float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
    ast.USub: operator.neg,
    ast.UAdd: operator.pos,
}
_MAX_EXPONENT = 64
_MAX_OPERAND = 10**12
# Every intermediate result too: a chain of products or powers must neither grow a number past
# what `str` converts (4300 digits) nor cost seconds of CPU.
_MAX_RESULT = 10**100


@dataclass(slots=True)
class EngineFaults:
    """Latency added to every request, and the next N queries answered with an error status."""

    latency_seconds: float = 0.0
    fail_next: int = 0
    fail_status: int = 503


@dataclass(frozen=True, slots=True)
class _Answer:
    """One charged answer, before it is put in the shape of its caller (in-process or HTTP)."""

    query_id: str
    user_id: str
    session_id: UUID | None
    final_answer: str
    confidence: float | None
    tokens: int
    cost: Decimal
    request_id: str | None
    processing_time: float

    def metadata(self) -> dict[str, Any]:
        return {
            "engine": "embedded",
            "tokens_used": self.tokens,
            "query_id": self.query_id,
            "request_id": self.request_id,
            "processing_time": self.processing_time,
        }

    def result(self) -> QueryResult:
        return QueryResult(
            query_id=self.query_id,
            final_answer=self.final_answer,
            ftns_charged=float(self.cost),
            processing_time=self.processing_time,
            quality_score=None if self.confidence is None else round(100 * self.confidence),
            session_id=self.session_id,
            metadata=self.metadata(),
        )

    def wire(self) -> PRSMResponse:
        return PRSMResponse(
            session_id=self.session_id,
            user_id=self.user_id,
            final_answer=self.final_answer,
            confidence_score=self.confidence,
            context_used=self.tokens,
            ftns_charged=float(self.cost),
            metadata=self.metadata(),
            created_at=datetime.now(UTC),
        )


@dataclass(frozen=True, slots=True)
class _Refusal:
    """An error answer, as the node sends it: status, JSON body, headers."""

    status: int
    body: str
    headers: dict[str, str] | None = None

    def response(self) -> Response:
        return Response(
            self.body, status_code=self.status, media_type="application/json", headers=self.headers
        )


class EmbeddedEngine:
    def __init__(
        self,
        faults: EngineFaults | None = None,
        *,
        timeout_seconds: float = 30.0,
        unavailable_retry_after: int = 5,
    ) -> None:
        self.faults = faults or EngineFaults()
        self.queries_answered = 0
        self._timeout = timeout_seconds
        self._unavailable_retry_after = unavailable_retry_after
        self._balances: dict[str, Decimal] = {}
        self._charged: dict[tuple[str, UUID, str], _Answer] = {}
        self.app = Starlette(
            routes=[
                Route("/api/v1/nwtn/query", self.handle_query, methods=["POST"]),
                Route("/api/v1/stream", self._stream_endpoint, methods=["POST"]),
                Route("/health", self._health_endpoint, methods=["GET"]),
            ]
        )

    @classmethod
    def from_settings(cls, settings: PRSMSettings) -> Self:
        """The engine a service with no `PRSM_API_URL` answers with, faults as configured."""
        faults = EngineFaults(
            latency_seconds=settings.prsm_engine_latency_ms / 1000,
            fail_next=settings.prsm_engine_fail_next,
            fail_status=settings.prsm_engine_fail_status,
        )
        return cls(
            faults,
            timeout_seconds=settings.prsm_timeout_seconds,
            unavailable_retry_after=settings.prsm_unavailable_retry_after_seconds,
        )

    def balance(self, user_id: str) -> Decimal:
        return self._balances.get(user_id, WELCOME_GRANT)

    def users(self) -> list[str]:
        """The users that have been charged at least once."""
        return list(self._balances)

    # --- in-process: the `Answerer` the service's query path stands on --------------------

    async def query(self, query: PRSMQuery) -> QueryResult:
        # One turn of the event loop, as a node's answer over the network would give: answered
        # in the same step as the request, every query ran start to end at once, and under
        # uvloop some waited far longer than others (at 64 connections, p99 176 ms against a
        # median of 13 ms; with the turn, 13 to 28 ms and 13% more answers a second).
        await asyncio.sleep(0)
        outcome = await self._answer(query)
        if isinstance(outcome, _Refusal):
            # Mapped exactly as the HTTP client maps the same answer from a node.
            raise error_from_node(
                outcome.status,
                outcome.body.encode(),
                (outcome.headers or {}).get("Retry-After"),
                self._unavailable_retry_after,
            )
        return outcome.result()

    async def stream(self, query: PRSMQuery) -> AsyncIterator[StreamEvent]:
        result = await self.query(query)
        for event in _events(result.query_id, result.final_answer, result.ftns_charged):
            yield event

    async def ping(self) -> bool:
        return True

    # --- over HTTP: the node's wire protocol -------------------------------------------------

    async def _health_endpoint(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy", "engine": "embedded"})

    async def handle_query(self, request: Request) -> Response:
        outcome = await self._answer_request(request)
        if isinstance(outcome, _Refusal):
            return outcome.response()
        return Response(outcome.wire().model_dump_json(), media_type="application/json")

    async def _stream_endpoint(self, request: Request) -> Response:
        outcome = await self._answer_request(request)
        if isinstance(outcome, _Refusal):
            return outcome.response()
        events = _events(outcome.query_id, outcome.final_answer, float(outcome.cost))
        return StreamingResponse(_sse(events), media_type="text/event-stream")

    async def _answer_request(self, request: Request) -> _Answer | _Refusal:
        try:
            user_input = UserInput.model_validate_json(await request.body())
        except ValidationError as exc:
            return _node_error(
                422, "validation_error", "Invalid request", {"errors": _error_summary(exc)}
            )
        query = PRSMQuery(
            user_id=user_input.user_id,
            prompt=user_input.prompt,
            context_allocation=user_input.context_allocation,
            session_id=user_input.session_id,
            request_id=request.headers.get("X-Request-ID"),
        )
        return await self._answer(query)

    # --- the engine itself ---------------------------------------------------------------

    async def _answer(self, query: PRSMQuery) -> _Answer | _Refusal:
        if self.faults.latency_seconds:
            try:
                async with asyncio.timeout(self._timeout):
                    await asyncio.sleep(self.faults.latency_seconds)
            except TimeoutError as exc:
                raise PRSMTimeoutError.after(self._timeout) from exc
        if self.faults.fail_next:
            self.faults.fail_next -= 1
            return _injected_fault(self.faults.fail_status)
        return self._charge(query)

    def _charge(self, query: PRSMQuery) -> _Answer | _Refusal:
        started = time.perf_counter()
        user_id, prompt, allocation = query.user_id, query.prompt, query.context_allocation
        key = None if query.session_id is None else (user_id, query.session_id, prompt)
        if key is not None and key in self._charged:
            # The same answer again, and charged once: this request cost nothing, and says so,
            # or whoever keeps accounts from `ftns_charged` would count the charge twice.
            return replace(self._charged[key], cost=Decimal(0))
        answer, confidence = _respond(prompt)
        tokens = len(_TOKEN.findall(prompt)) + len(_TOKEN.findall(answer))
        cost = tokens * PRICE_PER_TOKEN
        balance = self.balance(user_id)
        available = balance if allocation is None else min(balance, Decimal(allocation))
        if cost > available:
            return _node_error(
                422,
                "insufficient_funds",
                "Not enough FTNS for this query",
                {"required": float(cost), "available": float(available)},
            )
        self._balances[user_id] = balance - cost
        self.queries_answered += 1
        charged = _Answer(
            query_id=f"q_{unique_hex()}",
            user_id=user_id,
            session_id=query.session_id,
            final_answer=answer,
            confidence=confidence,
            tokens=tokens,
            cost=cost,
            request_id=query.request_id,
            processing_time=round(time.perf_counter() - started, 6),
        )
        if key is not None:
            self._charged[key] = charged
        return charged


def _respond(prompt: str) -> tuple[str, float | None]:
    """The answer and its confidence: exact for arithmetic, none for a restatement."""
    for candidate in sorted(_ARITHMETIC.findall(prompt), key=len, reverse=True):
        value = _evaluate(candidate.strip())
        if value is not None:
            return value, 1.0
    shown = prompt if len(prompt) <= 200 else f"{prompt[:200]}..."
    return (
        f'[embedded engine, not AI] No model is attached; your prompt was: "{shown}"',
        None,
    )


@functools.lru_cache(maxsize=256)
def _evaluate(expression: str) -> str | None:
    """Evaluates plain arithmetic by walking its syntax tree; anything else gives None. The
    same few sums come again and again, and parsing is most of the engine's time."""
    if not any(symbol in expression for symbol in "+-*/%"):
        return None
    try:
        value = _evaluate_node(ast.parse(expression, mode="eval").body)
    except (SyntaxError, ValueError, ZeroDivisionError, OverflowError, RecursionError):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:.10g}" if isinstance(value, float) else str(value)


def _evaluate_node(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        if isinstance(node.value, bool) or abs(node.value) > _MAX_OPERAND:
            raise ValueError("not a plain number, or too large")
        return node.value
    if isinstance(node, ast.UnaryOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_evaluate_node(node.operand))
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        left, right = _evaluate_node(node.left), _evaluate_node(node.right)
        if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
            raise ValueError("exponent too large")
        result = _OPERATORS[type(node.op)](left, right)
        if not isinstance(result, int | float) or abs(result) > _MAX_RESULT:
            raise ValueError("not a real number, or too large")
        return result
    raise ValueError("not arithmetic")


def _events(query_id: str, final_answer: str, ftns_charged: float) -> list[StreamEvent]:
    """An answer as the node streams it: start, the words four at a time, end."""
    words = final_answer.split(" ")
    return [
        StreamEvent(type="start", query_id=query_id),
        *(
            StreamEvent(type="content", content=" ".join(words[i : i + 4]) + " ")
            for i in range(0, len(words), 4)
        ),
        StreamEvent(type="end", final_answer=final_answer, ftns_charged=ftns_charged),
    ]


async def _sse(events: list[StreamEvent]) -> AsyncIterator[str]:
    for event in events:
        yield f"data: {event.model_dump_json(exclude_none=True)}\n\n"


def _injected_fault(status: int) -> _Refusal:
    if status == 200:
        return _Refusal(200, '{"unexpected": "payload"}')
    if status == 429:
        return _node_error(429, "rate_limited", "Injected rate limit", headers={"Retry-After": "1"})
    if status == 422:
        return _node_error(422, "safety_violation", "Injected safety refusal")
    return _node_error(status, "unavailable", "Injected fault")


def _node_error(
    status: int,
    error_type: str,
    message: str,
    details: dict[str, Any] | None = None,
    headers: dict[str, str] | None = None,
) -> _Refusal:
    body = NodeError(error_type=error_type, message=message, details=details or {})
    return _Refusal(status, body.model_dump_json(), headers)


def _error_summary(exc: ValidationError) -> list[dict[str, Any]]:
    return json.loads(exc.json(include_url=False, include_input=False))  # type: ignore[no-any-return]
