from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm

from {{ cookiecutter.package_name }}.auth.dependencies import CurrentUser
from {{ cookiecutter.package_name }}.auth.schemas import Me, Token
from {{ cookiecutter.package_name }}.auth.security import create_access_token, passwords_for
from {{ cookiecutter.package_name }}.auth.throttle import LoginThrottle
from {{ cookiecutter.package_name }}.auth.users import find_user, set_password_hash
from {{ cookiecutter.package_name }}.prsm.schemas import ErrorBody
from {{ cookiecutter.package_name }}.services import ServicesDep

router = APIRouter(prefix="/auth", tags=["auth"])

LOGIN_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Wrong username or password"},
    403: {"model": ErrorBody, "description": "The account is deactivated"},
    429: {"model": ErrorBody, "description": "Too many failed logins; see Retry-After"},
}


@router.post("/token", responses=LOGIN_RESPONSES)
async def login(
    form: Annotated[OAuth2PasswordRequestForm, Depends()],
    request: Request,
    services: ServicesDep,
) -> Token:
    """OAuth2 password flow: a username and password (form fields) for a bearer token."""
    settings = services.settings
    throttle = LoginThrottle(services.sessions, settings)
    address = request.client.host if request.client else None
    retry_after = await throttle.attempt(form.username, address)
    if retry_after is not None:
        raise HTTPException(
            status_code=status.HTTP_429_TOO_MANY_REQUESTS,
            detail="Too many failed logins; try again later",
            headers={"Retry-After": str(retry_after)},
        )
    user = await find_user(services.sessions, form.username)
    valid, new_hash = await passwords_for(settings).verify(
        form.password, user.password_hash if user else None
    )
    if user is None or not valid:
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="Incorrect username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    await throttle.succeeded(form.username, address)
    if not user.is_active:
        raise HTTPException(status_code=status.HTTP_403_FORBIDDEN, detail="Account deactivated")
    if new_hash is not None:
        # Stored with older argon2 parameters: upgraded now that the password is known.
        await set_password_hash(services.sessions, user.username, new_hash)
    token, expires_in = create_access_token(user.username, settings)
    return Token(access_token=token, expires_in=expires_in)


@router.get("/me", responses={401: {"model": ErrorBody, "description": "No valid token"}})
async def me(user: CurrentUser) -> Me:
    """The caller's account: username, FTNS quota left, and whether it is active."""
    return Me(username=user.username, quota=float(user.quota), is_active=user.is_active)
