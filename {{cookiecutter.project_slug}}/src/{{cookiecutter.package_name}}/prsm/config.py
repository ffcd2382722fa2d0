from pydantic import BaseModel, Field, SecretStr


class PRSMSettings(BaseModel):
    prsm_api_url: str = Field(
        default="",
        description="Base URL of the PRSM node; empty runs the embedded offline engine.",
    )
    prsm_api_key: SecretStr = SecretStr("")
    prsm_timeout_seconds: float = Field(default=30.0, gt=0)
    prsm_connect_timeout_seconds: float = Field(default=5.0, gt=0)
    prsm_max_connections: int = Field(default=100, ge=1)
    prsm_unavailable_retry_after_seconds: int = Field(default=5, ge=1)
    # The embedded engine's fault injection, for load and failure drills without a node.
    prsm_engine_latency_ms: int = Field(default=0, ge=0)
    prsm_engine_fail_next: int = Field(default=0, ge=0)
    prsm_engine_fail_status: int = Field(default=503, ge=200, le=599)
