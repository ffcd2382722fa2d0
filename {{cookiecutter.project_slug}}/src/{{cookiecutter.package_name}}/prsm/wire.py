"""The PRSM node's own request and response shapes."""

from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, Field


class UserInput(BaseModel):
    user_id: str = Field(min_length=1)
    prompt: str = Field(min_length=1)
    context_allocation: int | None = Field(default=None, ge=0)
    session_id: UUID | None = None
    preferences: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class PRSMResponse(BaseModel):
    session_id: UUID | None = None
    user_id: str
    final_answer: str
    reasoning_trace: list[Any] = Field(default_factory=list)
    confidence_score: float | None = Field(default=None, ge=0, le=1)
    context_used: int = 0
    ftns_charged: float = Field(ge=0)
    sources: list[Any] = Field(default_factory=list)
    safety_validated: bool = True
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class StreamEvent(BaseModel):
    """One Server-Sent Event of a PRSM stream, as relayed to the service's caller."""

    type: Literal["start", "content", "end", "error"]
    query_id: str | None = None
    content: str | None = None
    final_answer: str | None = None
    ftns_charged: float | None = None
    error_type: str | None = None
    message: str | None = None


class NodeError(BaseModel):
    success: Literal[False] = False
    error_type: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    request_id: str | None = None
