"""The service's own request and response bodies for the AI routes."""

from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from {{ cookiecutter.package_name }}.logs import request_id_var
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery

MAX_PROMPT_CHARS = 16_000
MAX_CONTEXT_ALLOCATION = 10_000


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

{% if not cookiecutter.use_auth %}
    user_id: str = Field(min_length=1, max_length=128, description="The PRSM user to charge.")
{% endif %}
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT_CHARS)
    context_allocation: int = Field(
        default=50,
        ge=0,
        le=MAX_CONTEXT_ALLOCATION,
        # A budget is a JSON integer: not `true`, not "50", not 50.0.
        strict=True,
        description="The most FTNS this query may cost.",
    )
    session_id: UUID | None = Field(
        default=None, description="Groups the queries of one conversation."
    )

    def to_query(self, user_id: str) -> PRSMQuery:
        return PRSMQuery(
            user_id=user_id,
            prompt=self.prompt,
            context_allocation=self.context_allocation,
            session_id=self.session_id,
            request_id=request_id_var.get(),
        )


class QueryResponse(BaseModel):
    model_config = ConfigDict(from_attributes=True, validate_by_name=True)

    query_id: str
    answer: str = Field(validation_alias="final_answer")
    cost: float = Field(validation_alias="ftns_charged", description="FTNS charged.")
    processing_time: float = Field(description="Seconds PRSM spent on the query.")
    quality_score: int | None = Field(ge=0, le=100, description="PRSM's confidence, 0 to 100.")
    session_id: UUID | None
{% if cookiecutter.use_redis_cache %}
    from_cache: bool = Field(description="Answered from the cache: nothing was charged.")
{% endif %}


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="Where the invalid value is, e.g. body, prompt.")
    msg: str
    type: str


class ErrorBody(BaseModel):
    detail: str | list[FieldError] = Field(
        description="What went wrong; for invalid input, one entry per invalid field."
    )
    error_type: str
    request_id: str
