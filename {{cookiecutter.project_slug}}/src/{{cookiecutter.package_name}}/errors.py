"""Every error leaves as JSON with the request id; nothing leaves as a stack trace."""

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from {{ cookiecutter.package_name }}.logs import request_id_var
from {{ cookiecutter.package_name }}.middleware import REQUEST_ID_HEADER, SECURITY_HEADERS
from {{ cookiecutter.package_name }}.prsm.errors import PRSMError

logger = logging.getLogger(__name__)


def error_response(
    status_code: int,
    detail: object,
    error_type: str,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body = {"detail": detail, "error_type": error_type, "request_id": request_id_var.get()}
    return JSONResponse(body, status_code=status_code, headers=headers)


async def _prsm_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, PRSMError)  # noqa: S101  # nosec B101  # registered for it only
    logger.warning("prsm error", extra={"error_type": exc.error_type, "status": exc.status_code})
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after else None
    return error_response(exc.status_code, exc.message, exc.error_type, headers)


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101  # nosec B101  # registered for it only
    # The offending input is left out: it may be a prompt, which is never echoed or logged.
    errors = [
        {"loc": list(error["loc"]), "msg": error["msg"], "type": error["type"]}
        for error in exc.errors()
    ]
    return error_response(422, errors, "validation_error")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)  # noqa: S101  # nosec B101  # registered for it only
    return error_response(exc.status_code, exc.detail, "http_error", exc.headers)


async def _unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette runs this outermost, after the request context and its headers are gone:
    # restore them.
    request_id = getattr(request.state, "request_id", "-")
    token = request_id_var.set(request_id)
    try:
        logger.exception("unhandled error")
        headers = {**SECURITY_HEADERS, REQUEST_ID_HEADER: request_id}
        return error_response(500, "Internal server error", "internal_error", headers)
    finally:
        request_id_var.reset(token)


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PRSMError, _prsm_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _unexpected_error)
