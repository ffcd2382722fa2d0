from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordBearer

from {{ cookiecutter.package_name }}.auth.models import User
from {{ cookiecutter.package_name }}.auth.quota import require_quota
from {{ cookiecutter.package_name }}.auth.users import Account, find_user
from {{ cookiecutter.package_name }}.prsm.answerer import PRSMQuery
from {{ cookiecutter.package_name }}.prsm.schemas import QueryRequest
from {{ cookiecutter.package_name }}.services import Services, ServicesDep, get_services

# Answers 401 with `WWW-Authenticate: Bearer` when the header is missing or not a bearer token,
# and gives /docs its "Authorize" button.
oauth2_scheme = OAuth2PasswordBearer(tokenUrl="/auth/token")


def _refused() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Could not validate credentials",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


def _username(token: str, services: Services) -> str:
    try:
        return services.tokens.subject(token)
    except jwt.InvalidTokenError as exc:
        raise _refused() from exc


async def get_current_user(
    token: Annotated[str, Depends(oauth2_scheme)], services: ServicesDep
) -> User:
    """The active user the bearer token names, as the database has it now; 401 for any token
    that is not one."""
    user = await find_user(services.sessions, _username(token, services))
    if user is None or not user.is_active:
        raise _refused()
    return user


async def get_recent_user(
    token: Annotated[str, Depends(oauth2_scheme)], request: Request
) -> Account:
    """Like `get_current_user`, from a read at most USER_CACHE_SECONDS old: for the AI routes,
    where a database read per request would cost more than the answer. (The services come
    straight off the request: each dependency FastAPI resolves costs more than this one.)"""
    services = await get_services(request)
    user = await services.users.get(_username(token, services))
    if user is None or not user.is_active:
        raise _refused()
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
RecentUser = Annotated[Account, Depends(get_recent_user)]


async def query_for_current_user(
    body: QueryRequest, token: Annotated[str, Depends(oauth2_scheme)], request: Request
) -> PRSMQuery:
    """With auth on, the PRSM user is the token's user; a user with no quota left gets 429.

    The user is read as `RecentUser` reads it, by a call rather than one more dependency for
    FastAPI to resolve on every query."""
    user = await get_recent_user(token, request)
    require_quota(user)
    return body.to_query(user.username)
