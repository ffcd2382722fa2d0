"""An embedded, deterministic stand-in for a PRSM node, served in-process over ASGI.

It is not AI and says so: it evaluates arithmetic, otherwise restates the prompt, and labels
every answer `"engine": "embedded"`. It keeps a per-user FTNS ledger like the node (welcome
grant, a price per token, the allocation cap, one charge per session and input), and can inject
latency and faults so that load and failure tests need no node either.
"""

import ast
import asyncio
import json
import operator
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

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


class EmbeddedEngine:
    def __init__(self, faults: EngineFaults | None = None) -> None:
        self.faults = faults or EngineFaults()
        self.queries_answered = 0
        self._balances: dict[str, Decimal] = {}
        self._charged: dict[tuple[str, str, str], PRSMResponse] = {}
        self.app = Starlette(
            routes=[
                Route("/api/v1/nwtn/query", self.handle_query, methods=["POST"]),
                Route("/api/v1/stream", self._stream_endpoint, methods=["POST"]),
                Route("/health", self._health_endpoint, methods=["GET"]),
            ]
        )

    def balance(self, user_id: str) -> Decimal:
        return self._balances.get(user_id, WELCOME_GRANT)

    def users(self) -> list[str]:
        """The users that have been charged at least once."""
        return list(self._balances)

    async def _health_endpoint(self, request: Request) -> Response:
        return JSONResponse({"status": "healthy", "engine": "embedded"})

    async def handle_query(self, request: Request) -> Response:
        outcome = await self._answer(request)
        if isinstance(outcome, Response):
            return outcome
        return Response(outcome.model_dump_json(), media_type="application/json")

    async def _stream_endpoint(self, request: Request) -> Response:
        outcome = await self._answer(request)
        if isinstance(outcome, Response):
            return outcome
        return StreamingResponse(_sse(outcome), media_type="text/event-stream")

    async def _answer(self, request: Request) -> PRSMResponse | Response:
        if self.faults.latency_seconds:
            await asyncio.sleep(self.faults.latency_seconds)
        if self.faults.fail_next:
            self.faults.fail_next -= 1
            return _injected_fault(self.faults.fail_status)
        try:
            user_input = UserInput.model_validate_json(await request.body())
        except ValidationError as exc:
            return _node_error(
                422, "validation_error", "Invalid request", {"errors": _error_summary(exc)}
            )
        return self._charge(user_input, request.headers.get("X-Request-ID"))

    def _charge(self, user_input: UserInput, request_id: str | None) -> PRSMResponse | Response:
        started = time.perf_counter()
        key = (user_input.user_id, str(user_input.session_id), user_input.prompt)
        if user_input.session_id is not None and key in self._charged:
            # The same answer again, and charged once: this request cost nothing, and says so,
            # or whoever keeps accounts from `ftns_charged` would count the charge twice.
            return self._charged[key].model_copy(update={"ftns_charged": 0.0})
        answer, confidence = _respond(user_input.prompt)
        tokens = len(_TOKEN.findall(user_input.prompt)) + len(_TOKEN.findall(answer))
        cost = tokens * PRICE_PER_TOKEN
        balance = self.balance(user_input.user_id)
        allocation = user_input.context_allocation
        available = balance if allocation is None else min(balance, Decimal(allocation))
        if cost > available:
            return _node_error(
                422,
                "insufficient_funds",
                "Not enough FTNS for this query",
                {"required": float(cost), "available": float(available)},
            )
        self._balances[user_input.user_id] = balance - cost
        self.queries_answered += 1
        response = PRSMResponse(
            session_id=user_input.session_id,
            user_id=user_input.user_id,
            final_answer=answer,
            confidence_score=confidence,
            context_used=tokens,
            ftns_charged=float(cost),
            metadata={
                "engine": "embedded",
                "tokens_used": tokens,
                "query_id": f"q_{uuid.uuid4().hex}",
                "request_id": request_id,
                "processing_time": round(time.perf_counter() - started, 6),
            },
            created_at=datetime.now(UTC),
        )
        if user_input.session_id is not None:
            self._charged[key] = response
        return response


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


def _evaluate(expression: str) -> str | None:
    """Evaluates plain arithmetic by walking its syntax tree; anything else gives None."""
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


async def _sse(response: PRSMResponse) -> AsyncIterator[str]:
    query_id = str(response.metadata["query_id"])
    events = [StreamEvent(type="start", query_id=query_id)]
    words = response.final_answer.split(" ")
    events += [
        StreamEvent(type="content", content=" ".join(words[i : i + 4]) + " ")
        for i in range(0, len(words), 4)
    ]
    events.append(
        StreamEvent(
            type="end", final_answer=response.final_answer, ftns_charged=response.ftns_charged
        )
    )
    for event in events:
        yield f"data: {event.model_dump_json(exclude_none=True)}\n\n"


def _injected_fault(status: int) -> Response:
    if status == 200:
        return Response('{"unexpected": "payload"}', media_type="application/json")
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
) -> Response:
    body = NodeError(error_type=error_type, message=message, details=details or {})
    return Response(
        body.model_dump_json(), status_code=status, media_type="application/json", headers=headers
    )


def _error_summary(exc: ValidationError) -> list[dict[str, Any]]:
    return json.loads(exc.json(include_url=False, include_input=False))  # type: ignore[no-any-return]
