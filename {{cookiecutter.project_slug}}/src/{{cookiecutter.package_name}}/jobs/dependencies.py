from typing import Annotated

from fastapi import Depends

{% if cookiecutter.use_auth %}
from {{ cookiecutter.package_name }}.auth.dependencies import RecentUser
{% endif %}
from {{ cookiecutter.package_name }}.jobs.queue import JobQueue
from {{ cookiecutter.package_name }}.services import ServicesDep


async def get_job_queue(services: ServicesDep) -> JobQueue:
    return services.jobs
{% if cookiecutter.use_auth %}


async def job_owner(user: RecentUser) -> str:
    """A job belongs to the user who submitted it; nobody else can see it."""
    return user.username
{% else %}


async def job_owner() -> None:
    """Without auth there is no caller to check: a job's id is what lets one read it."""
{% endif %}


JobQueueDep = Annotated[JobQueue, Depends(get_job_queue)]
JobOwner = Annotated[str | None, Depends(job_owner)]
