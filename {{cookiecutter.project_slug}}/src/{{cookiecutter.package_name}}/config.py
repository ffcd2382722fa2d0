"""Settings, read from the environment and `.env`.

The core block lives here; each feature brings its own block from its package, so turning a
feature off removes its settings with it.
"""

from typing import Literal

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
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    docs_enabled: bool = True
