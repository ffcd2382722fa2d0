from typing import Annotated

from fastapi import Depends, Request

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.dependencies import query_for_current_user as query_for_caller
{% endif %}
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery
{% if not cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.prsm.schemas import QueryRequest
{% endif %}


def answerer_for(request: Request) -> Answerer:
    """The top stage of the query path. The AI routes take it straight off the request rather
    than as a dependency: FastAPI spends about 10 µs on each dependency it resolves, every
    query, and this one only reads an attribute."""
    answerer: Answerer = request.app.state.services.answerer
    return answerer
{% if not cookiecutter.use_auth %}


async def query_for_caller(body: QueryRequest) -> PRSMQuery:
    """Without auth the caller names the PRSM user in the body, as the guide does."""
    return body.to_query(body.user_id)
{% endif %}


CallerQuery = Annotated[PRSMQuery, Depends(query_for_caller)]
