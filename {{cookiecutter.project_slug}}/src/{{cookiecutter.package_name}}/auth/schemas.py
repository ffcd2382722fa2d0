from typing import Literal

from pydantic import BaseModel, Field


class Token(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 -- the OAuth2 token type
    expires_in: int = Field(description="Seconds until the token expires.")


class Me(BaseModel):
    username: str
    quota: float = Field(description="FTNS the user may still spend.")
    is_active: bool
