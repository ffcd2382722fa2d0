from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, status
from fastapi.security import OAuth2PasswordBearer

from {{ cookiecutter.package_name }}.auth.models import User
from {{ cookiecutter.package_name }}.auth.quota import require_quota
from {{ cookiecutter.package_name }}.auth.security import read_access_token
from {{ cookiecutter.package_name }}.auth.users import find_user
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery
from {{ cookiecutter.package_name }}.prsm.schemas import QueryRequest
from {{ cookiecutter.package_name }}.services import ServicesDep

# Answers 401 with `WWW-Authenticate: Bearer` when the header is missing or not a bearer token,
# and gives /docs its "Authorize" button.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token")


def _refused() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


async def get_current_user(
    token: Annotated[str, Depends(oauth2_scheme)], services: ServicesDep
) -> User:
    """The active user the bearer token names; 401 for any token that is not one."""
    try:
        username = read_access_token(token, services.settings)
    except jwt.InvalidTokenError as exc:
        raise _refused() from exc
    user = await find_user(services.sessions, username)
    if user is None or not user.is_active:
        raise _refused()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


async def query_for_current_user(body: QueryRequest, user: CurrentUser) -> PRSMQuery:
    """With auth on, the PRSM user is the token's user; a user with no quota left gets 429."""
    require_quota(user)
    return body.to_query(user.username)
