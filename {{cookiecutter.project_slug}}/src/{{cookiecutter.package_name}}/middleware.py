"""Request id, request size limits, security headers and the request log, as one plain ASGI
middleware.

It sits inside FastAPI's exception handling, so what it refuses gets the service's JSON error
body with its request id.
"""

import asyncio
import logging
import re
import time

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.ids import unique_hex
from {{ cookiecutter.package_name }}.logs import REQUEST_LOGGER, request_id_var

REQUEST_ID_HEADER = "X-Request-ID"
# A caller's id is echoed into headers and logs, so only a short, plain token is accepted.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    # Nothing a JSON answer holds may load or run anything; the docs pages set their own.
    "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
}
# As the ASGI messages carry them, encoded once.
_RAW_SECURITY_HEADERS = [
    (name.lower().encode("latin-1"), value.encode("latin-1"))
    for name, value in SECURITY_HEADERS.items()
]
_RAW_REQUEST_ID_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")

request_log = logging.getLogger(REQUEST_LOGGER)


def accepted_request_id(candidate: bytes | None) -> str:
    """The caller's id if it is plain enough, else a new one."""
    if candidate is not None:
        offered = candidate.decode("latin-1")
        if _VALID_REQUEST_ID.fullmatch(offered):
            return offered
    return unique_hex()


class RequestMiddleware:
    """Everything the service does for every request, in one layer: its id (the caller's, if
    plain enough), its size limits, the security headers the response did not set itself,
    and its one log line.

    Header blocks over the limit are refused with 431, bodies over it with 413, whether or
    not they declare a length. The HTTP parser has read the headers by the time this runs
    (uvicorn's httptools parser sets no limit of its own), so the header limit bounds what the
    service does with them, not what the parser buffers: a proxy in front should cap both."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes
        self._body_too_large = f"Request body is larger than {max_body_bytes} bytes"
        self._headers_too_large = f"Request headers are larger than {max_header_bytes} bytes"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = None
        declared = b""
        header_bytes = 0
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == _RAW_REQUEST_ID_HEADER:
                offered = value
            elif name == b"content-length":
                declared = value
        request_id = accepted_request_id(offered)
        raw_request_id = request_id.encode("latin-1")
        token = request_id_var.set(request_id)
        # Kept on the request too: the handler of unexpected errors runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    header
                    for header in message.get("headers", ())
                    if header[0] != _RAW_REQUEST_ID_HEADER
                ]
                present = {name for name, _ in headers}
                headers.append((_RAW_REQUEST_ID_HEADER, raw_request_id))
                headers += [header for header in _RAW_SECURITY_HEADERS if header[0] not in present]
                message["headers"] = headers
                # One turn of the event loop before the response goes out: the responses of
                # all the requests the turn handled then go out back to back, and so do the
                # requests their clients send next. Under load each step of the service runs
                # for many requests in a row, on warm CPU caches: about a fifth less CPU per
                # request at 64 connections, in user and system time alike. Idle, it costs
                # one turn: microseconds.
                await asyncio.sleep(0)
            await send(message)

        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                # Raised while a route reads its body: FastAPI passes HTTPException through
                # to the service's error handler.
                raise HTTPException(413, self._body_too_large)
            return message

        try:
            if header_bytes > self.max_header_bytes:
                refusal = _refusal(431, "request_headers_too_large", self._headers_too_large)
                await refusal(scope, receive, send_with_context)
            elif declared.isdigit() and int(declared) > self.max_body_bytes:
                refusal = _refusal(413, "request_too_large", self._body_too_large)
                await refusal(scope, receive, send_with_context)
            else:
                await self.app(scope, limited_receive, send_with_context)
        finally:
            if request_log.isEnabledFor(logging.INFO):
                request_log.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


def _refusal(status_code: int, error_type: str, detail: str) -> JSONResponse:
    body = {"detail": detail, "error_type": error_type, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status_code)
