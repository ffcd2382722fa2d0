from typing import Self

from pydantic import BaseModel, Field, SecretStr, model_validator

# Used when SECRET_KEY is unset: good enough to sign a developer's tokens, refused in production.
DEVELOPMENT_SECRET_KEY = "insecure-development-key-never-use-it-in-production"  # noqa: S105  # nosec B105
# The placeholder in .env.example, refused in production too.
EXAMPLE_SECRET_KEY = "change-me-to-a-random-string-of-at-least-32-bytes"  # noqa: S105  # nosec B105
MIN_SECRET_KEY_BYTES = 32


class AuthSettings(BaseModel):
    secret_key: SecretStr = Field(
        default=SecretStr(DEVELOPMENT_SECRET_KEY),
        description="Signs the access tokens (HS256); at least 32 random bytes in production.",
    )
    access_token_expire_minutes: int = Field(default=30, ge=1)
    user_cache_seconds: float = Field(
        default=5,
        ge=0,
        description="How long the AI routes rely on a user read from the database: a user"
        " deactivated, or left with no quota, is refused within this time. 0 reads it on every"
        " request.",
    )
    database_url: str = Field(
        default="sqlite+aiosqlite:///./{{ cookiecutter.package_name }}.db",
        description="SQLAlchemy URL: sqlite+aiosqlite:///... or postgresql+asyncpg://...",
    )
    database_pool_size: int = Field(
        default=20,
        ge=1,
        description="Connections each process keeps open to the user database, at most; on"
        " PostgreSQL as many again for the quota statements every query runs. With all of"
        " them busy, a statement waits for one to come free.",
    )
    # Argon2id cost: the argon2-cffi defaults (RFC 9106 low-memory profile); tests lower them.
    argon2_time_cost: int = Field(default=3, ge=1)
    argon2_memory_cost_kib: int = Field(default=65536, ge=8)
    argon2_parallelism: int = Field(default=4, ge=1)
    # Failed logins: after this many within the window, 429 until the window ends.
    login_max_failures: int = Field(default=5, ge=1, description="Per username.")
    login_max_failures_per_address: int = Field(default=50, ge=1, description="Per client IP.")
    login_failure_window_seconds: int = Field(default=900, ge=1)

    @model_validator(mode="after")
    def _refuse_unsafe_secret_key(self) -> Self:
        key = self.secret_key.get_secret_value()
        if len(key.encode()) < MIN_SECRET_KEY_BYTES:
            raise ValueError(
                f"SECRET_KEY must be at least {MIN_SECRET_KEY_BYTES} bytes; generate one with "
                "`python -c 'import secrets; print(secrets.token_urlsafe(48))'`"
            )
        # `environment` belongs to the core Settings, which this mixin is always part of.
        if getattr(self, "environment", None) == "production" and key in (
            DEVELOPMENT_SECRET_KEY,
            EXAMPLE_SECRET_KEY,
        ):
            raise ValueError("SECRET_KEY is the published example key: set a secret one")
        if self.argon2_memory_cost_kib < 8 * self.argon2_parallelism:
            raise ValueError("ARGON2_MEMORY_COST_KIB must be at least 8 x ARGON2_PARALLELISM")
        return self
