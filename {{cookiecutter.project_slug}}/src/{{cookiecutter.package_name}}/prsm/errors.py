"""PRSM failures, each carrying the status the service answers its own caller with."""

from typing import Any


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
