import asyncio
from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel

from {{ cookiecutter.package_name }}.services import ReadinessCheck, ServicesDep

router = APIRouter(prefix="/health", tags=["health"])

PROBE_TIMEOUT_SECONDS = 2.0

CheckState = Literal["ok", "degraded", "down"]


class Liveness(BaseModel):
    status: Literal["ok"] = "ok"


_ALIVE = Liveness().model_dump_json().encode()


class Readiness(BaseModel):
    status: Literal["ready", "degraded", "unavailable"]
    checks: dict[str, CheckState]


@router.get("", response_model=Liveness)
async def liveness() -> Response:
    """The process is up; says nothing about PRSM or backing services."""
    # The same bytes for every probe, made once: orchestrators ask often.
    return Response(_ALIVE, media_type="application/json")


@router.get(
    "/ready",
    responses={503: {"model": Readiness, "description": "A service the API needs is down"}},
)
async def readiness(services: ServicesDep, response: Response) -> Readiness:
    """PRSM and every backing service: 503 when one the API cannot work without is down."""
    states = await asyncio.gather(*(_probe(check) for check in services.checks))
    checks = {check.name: state for check, state in zip(services.checks, states, strict=True)}
    if "down" in states:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="unavailable", checks=checks)
    return Readiness(status="degraded" if "degraded" in states else "ready", checks=checks)


async def _probe(check: ReadinessCheck) -> CheckState:
    try:
        async with asyncio.timeout(PROBE_TIMEOUT_SECONDS):
            healthy = await check.probe()
    except TimeoutError:
        healthy = False
    if healthy:
        return "ok"
    return "down" if check.critical else "degraded"
