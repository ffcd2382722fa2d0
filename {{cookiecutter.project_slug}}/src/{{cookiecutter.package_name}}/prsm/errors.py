"""PRSM failures, each carrying the status the service answers its own caller with."""

import json
from typing import Any, Self


class PRSMError(Exception):
    status_code = 502
    error_type = "prsm_error"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        self.details = details or {}


class PRSMBadGatewayError(PRSMError):
    """PRSM answered something the service cannot use, or refused the service's own key."""

    error_type = "prsm_bad_gateway"


class PRSMUnavailableError(PRSMError):
    status_code = 503
    error_type = "prsm_unavailable"


class PRSMTimeoutError(PRSMError):
    status_code = 504
    error_type = "prsm_timeout"

    @classmethod
    def after(cls, seconds: float) -> Self:
        return cls(f"PRSM did not answer within {seconds:g} s")


class PRSMRateLimitError(PRSMError):
    status_code = 429
    error_type = "prsm_rate_limited"


class InsufficientFundsError(PRSMError):
    status_code = 402
    error_type = "insufficient_funds"


class PRSMInvalidRequestError(PRSMError):
    status_code = 422
    error_type = "validation_error"


class SafetyViolationError(PRSMError):
    status_code = 422
    error_type = "safety_violation"


# Errors worth trying again later; everything else will fail the same way again.
TRANSIENT_ERRORS = (PRSMUnavailableError, PRSMTimeoutError, PRSMRateLimitError)


# A node that answers these on the stream path has no streaming: fall back to one query.
NO_STREAMING_STATUSES = frozenset({404, 405, 501})
_UNAVAILABLE_STATUSES = frozenset({501, 502, 503, 504})


def error_from_node(
    status: int, content: bytes, retry_after: str | None, default_retry_after: int
) -> PRSMError:
    """The service's error for a node's error answer: its status, its body (current or older
    shape), and its Retry-After header. The HTTP client and the embedded engine both map
    through this one table."""
    error_type, message, details = _error_body(content)
    wait = int(retry_after) if retry_after and retry_after.isdigit() else default_retry_after
    if status in (401, 403):
        return PRSMBadGatewayError("PRSM refused the service's credentials")
    if status == 429:
        return PRSMRateLimitError(message or "PRSM rate limit reached", retry_after=wait)
    if status in _UNAVAILABLE_STATUSES:
        return PRSMUnavailableError(message or "PRSM is unavailable", retry_after=wait)
    if status == 422 and error_type == "insufficient_funds":
        return InsufficientFundsError(message or "Not enough FTNS", details=details)
    if status == 422 and error_type == "safety_violation":
        return SafetyViolationError(message or "PRSM safety refused the prompt")
    if status in (400, 422):
        return PRSMInvalidRequestError(message or "PRSM rejected the request", details=details)
    if status < 300:
        return PRSMBadGatewayError("PRSM answered with a payload of the wrong shape")
    return PRSMBadGatewayError(f"PRSM answered with unexpected status {status}")


def _error_body(content: bytes) -> tuple[str | None, str | None, dict[str, Any]]:
    """Reads both the current error body and the one older nodes send."""
    try:
        body = json.loads(content)
    except ValueError:
        return None, None, {}
    if not isinstance(body, dict):
        return None, None, {}
    error_type = body.get("error_type") or body.get("error")
    message = body.get("message") or body.get("detail")
    details = body.get("details")
    return (
        error_type if isinstance(error_type, str) else None,
        message if isinstance(message, str) else None,
        details if isinstance(details, dict) else {},
    )
