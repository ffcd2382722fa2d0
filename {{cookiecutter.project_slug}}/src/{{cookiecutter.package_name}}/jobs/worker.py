"""The worker side: a broker that runs jobs through the same services as the web process."""

from contextlib import AsyncExitStack
from typing import Annotated
from uuid import UUID

from taskiq import Context, TaskiqDepends, TaskiqEvents, TaskiqState

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.broker import RUN_JOB, JobBroker, create_broker
from {{ cookiecutter.package_name }}.logs import configure_logging
from {{ cookiecutter.package_name }}.services import Services, open_services


def create_worker_broker(settings: Settings) -> JobBroker:
    """A broker that, in a worker, opens the services on startup and closes them on shutdown.

    Jobs then go through the same answerer stack as `/ai/query`: metrics, cache and quota.
    """
    broker = create_broker(settings)
    stack = AsyncExitStack()

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def open_worker_services(state: TaskiqState) -> None:
        configure_logging(settings.log_level)
        state.services = await stack.enter_async_context(open_services(settings))

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def close_worker_services(state: TaskiqState) -> None:
        await stack.aclose()

    broker.register_task(run_job, task_name=RUN_JOB)
    return broker


def worker_services(state: TaskiqState) -> Services:
    services: Services = state.services
    return services


async def run_job(job_id: str, context: Annotated[Context, TaskiqDepends()]) -> None:
    services = worker_services(context.state)
    await services.jobs.run(UUID(job_id), services.answerer)
