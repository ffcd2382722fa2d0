"""Request id, request log, security headers and request size limits, as plain ASGI middleware.

They sit inside FastAPI's exception handling, so what they refuse gets the service's JSON error
body with its request id.
"""

import logging
import re
import secrets
import time

from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from {{ cookiecutter.package_name }}.logs import request_id_var

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

logger = logging.getLogger(__name__)


def accepted_request_id(candidate: str | None) -> str:
    if candidate and _VALID_REQUEST_ID.fullmatch(candidate):
        return candidate
    return secrets.token_hex(16)


class RequestContextMiddleware:
    """Gives every request its id (the caller's, if plain enough), sets the security headers
    the response did not set itself, and writes the request's one log line."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        offered = None
        for name, value in scope["headers"]:
            if name == _RAW_REQUEST_ID_HEADER:
                offered = value.decode("latin-1")
                break
        request_id = accepted_request_id(offered)
        token = request_id_var.set(request_id)
        # Kept on the request too: the handler of unexpected errors runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_context(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [
                    (name, value)
                    for name, value in message.get("headers", ())
                    if name != _RAW_REQUEST_ID_HEADER
                ]
                present = {name for name, _ in headers}
                headers.append((_RAW_REQUEST_ID_HEADER, request_id.encode("latin-1")))
                headers += [header for header in _RAW_SECURITY_HEADERS if header[0] not in present]
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, send_with_context)
        finally:
            if logger.isEnabledFor(logging.INFO):
                logger.info(
                    "request",
                    extra={
                        "method": scope["method"],
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                    },
                )
            request_id_var.reset(token)


class RequestSizeLimitMiddleware:
    """Refuses header blocks over a limit with 431, and bodies over a limit with 413, whether
    or not they declare a length.

    The HTTP parser has read the headers by the time this runs (uvicorn's httptools parser
    sets no limit of its own), so the header limit bounds what the service does with them,
    not what the parser buffers: a proxy in front should cap both."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, max_header_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.max_header_bytes = max_header_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        header_bytes = 0
        declared = b""
        for name, value in scope["headers"]:
            header_bytes += len(name) + len(value)
            if name == b"content-length":
                declared = value
        if header_bytes > self.max_header_bytes:
            message = f"Request headers are larger than {self.max_header_bytes} bytes"
            await _refuse(431, "request_headers_too_large", message)(scope, receive, send)
            return
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            await _refuse(413, "request_too_large", self._body_message)(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body_bytes:
                # Raised while a route reads its body: FastAPI passes HTTPException through
                # to the service's error handler.
                raise HTTPException(413, self._body_message)
            return message

        await self.app(scope, limited_receive, send)

    @property
    def _body_message(self) -> str:
        return f"Request body is larger than {self.max_body_bytes} bytes"


def _refuse(status_code: int, error_type: str, detail: str) -> JSONResponse:
    body = {"detail": detail, "error_type": error_type, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status_code)
