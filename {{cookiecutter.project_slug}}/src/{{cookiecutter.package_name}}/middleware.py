"""Request id, request log, security headers and request size limits, as plain ASGI middleware.

They sit inside FastAPI's exception handling, so what they refuse gets the service's JSON error
body with its request id.
"""

import logging
import re
import time
import uuid

from starlette.datastructures import Headers, MutableHeaders
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

logger = logging.getLogger(__name__)


def accepted_request_id(candidate: str | None) -> str:
    if candidate and _VALID_REQUEST_ID.fullmatch(candidate):
        return candidate
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = accepted_request_id(Headers(scope=scope).get(REQUEST_ID_HEADER))
        token = request_id_var.set(request_id)
        # Kept on the request too: the handler of unexpected errors runs outside this middleware.
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_request_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = MutableHeaders(scope=message)
                headers[REQUEST_ID_HEADER] = request_id
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_with_request_id)
        finally:
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
        header_bytes = sum(len(name) + len(value) for name, value in scope["headers"])
        if header_bytes > self.max_header_bytes:
            message = f"Request headers are larger than {self.max_header_bytes} bytes"
            await _refuse(431, "request_headers_too_large", message)(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length", "")
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
