"""Every router of the service, in the order `create_app` includes them.

Each is included in the app itself, not nested in another router: FastAPI matches a request
against every level of routers on its way to the route.
"""

from fastapi import APIRouter

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.router import router as auth_router
{% endif %}
from {{ cookiecutter.package_name }}.health import router as health_router
{% if cookiecutter.use_background_jobs %}
from {{ cookiecutter.package_name }}.jobs.router import router as jobs_router
{% endif %}
from {{ cookiecutter.package_name }}.prsm.router import router as prsm_router

ROUTERS: list[APIRouter] = [
    health_router,
    prsm_router,
{% if cookiecutter.use_auth %}
    auth_router,
{% endif %}
{% if cookiecutter.use_background_jobs %}
    jobs_router,
{% endif %}
]
