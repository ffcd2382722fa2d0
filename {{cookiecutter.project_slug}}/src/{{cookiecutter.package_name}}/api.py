"""Every router of the service, in one list."""

from fastapi import APIRouter

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.router import router as auth_router
{% endif %}
from {{ cookiecutter.package_name }}.health import router as health_router
{% if cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.jobs.router import router as jobs_router
{% endif %}
from {{ cookiecutter.package_name }}.prsm.router import router as prsm_router

api_router = APIRouter()
api_router.include_router(health_router)
api_router.include_router(prsm_router)
{% if cookiecutter.use_auth %}
api_router.include_router(auth_router)
{% endif %}
{% if cookiecutter.use_background_jobs %}
api_router.include_router(jobs_router)
{% endif %}
