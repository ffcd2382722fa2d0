from typing import Annotated

from fastapi import Depends, Request

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.dependencies import query_for_current_user as query_for_caller
{% endif %}
from {{ cookiecutter.package_name }}.prsm.answerer import Answerer, PRSMQuery
{% if not cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.prsm.schemas import QueryRequest
{% endif %}


async def get_answerer(request: Request) -> Answerer:
    answerer: Answerer = request.app.state.services.answerer
    return answerer
{% if not cookiecutter.use_auth %}


async def query_for_caller(body: QueryRequest) -> PRSMQuery:
    """Without auth the caller names the PRSM user in the body, as the guide does."""
    return body.to_query(body.user_id)
{% endif %}


AnswererDep = Annotated[Answerer, Depends(get_answerer)]
CallerQuery = Annotated[PRSMQuery, Depends(query_for_caller)]
