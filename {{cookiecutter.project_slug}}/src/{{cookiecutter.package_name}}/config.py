"""Settings, read from the environment and `.env`.

The core block lives here; each feature brings its own block from its package, so turning a
feature off removes its settings with it.
"""

import logging
from typing import Literal, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.config import AuthSettings
{% endif %}
{% if cookiecutter.use_redis_cache %}
from {{ cookiecutter.package_name }}.cache.config import CacheSettings
{% endif %}
{% if cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.jobs.config import JobSettings
{% endif %}
from {{ cookiecutter.package_name }}.logs import configure_logging
{% if cookiecutter.use_prometheus %}
from {{ cookiecutter.package_name }}.metrics.config import MetricsSettings
{% endif %}
from {{ cookiecutter.package_name }}.prsm.config import PRSMSettings
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.redis_client import RedisSettings
{% endif %}


class Settings(
    PRSMSettings,
{% if cookiecutter.use_auth %}
    AuthSettings,
{% endif %}
{% if cookiecutter.use_redis_cache or cookiecutter.use_background_jobs %}
    RedisSettings,
{% endif %}
{% if cookiecutter.use_redis_cache %}
    CacheSettings,
{% endif %}
{% if cookiecutter.use_background_jobs %}
    JobSettings,
{% endif %}
{% if cookiecutter.use_prometheus %}
    MetricsSettings,
{% endif %}
    BaseSettings,
):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="ignore")

    environment: Literal["development", "test", "production"] = "development"
    debug: bool = False
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # /docs, /redoc and /openapi.json; unset (or empty), served except in production.
    docs_enabled: bool | None = None
    cors_allow_origins: list[str] = Field(
        default_factory=list, description="Origins allowed to call the API from a browser."
    )
    max_request_body_bytes: int = Field(default=1_048_576, ge=1024)
    # Names and values summed; a browser with its cookies sends a few KiB.
    max_request_header_bytes: int = Field(default=16_384, ge=1024)

    # FastAPI's own OpenTelemetry traces, metrics and logs, for an OpenTelemetry SDK that is
    # configured (for example fastapi[standard] with FASTAPI_OTEL_AUTO_CONFIGURE=true). Off,
    # FastAPI does not look for one on every request.
    telemetry_enabled: bool = False

    @field_validator("docs_enabled", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _docs_off_in_production(self) -> Self:
        if self.docs_enabled is None:
            self.docs_enabled = self.environment != "production"
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment == "production":
            if self.debug:
                raise ValueError("DEBUG must be off in production")
            if "*" in self.cors_allow_origins:
                raise ValueError("CORS_ALLOW_ORIGINS must list origins, not '*', in production")
        return self


def load_settings() -> Settings:
    """The settings from the environment and `.env`. Invalid ones stop the process with one
    log line that says why, JSON like every other, naming no value: values may be secrets."""
    try:
        return Settings()
    except ValidationError as error:
        problems = "; ".join(map(_described, error.errors(include_url=False, include_input=False)))
        configure_logging("INFO")
        logging.getLogger(__name__).critical("invalid settings: %s", problems)
        raise SystemExit(1) from None


def _described(problem: ErrorDetails) -> str:
    """`LOG_LEVEL: Input should be ...`, or the message alone for a rule across settings."""
    setting = "_".join(map(str, problem["loc"])).upper()
    message = problem["msg"].removeprefix("Value error, ")
    return f"{setting}: {message}" if setting else message
