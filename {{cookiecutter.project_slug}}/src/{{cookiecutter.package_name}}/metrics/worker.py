"""The job worker's own metrics endpoint: what its jobs did never reaches the web app."""

import logging
import os
from pathlib import Path
from threading import Thread
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import Collector
from taskiq import AsyncBroker, TaskiqEvents, TaskiqState

from {{ cookiecutter.package_name }}.metrics.collectors import multiprocess_mode
from {{ cookiecutter.package_name }}.metrics.dependencies import WorkerFiles
from {{ cookiecutter.package_name }}.services import Services

logger = logging.getLogger(__name__)


def serve_worker_metrics(broker: AsyncBroker) -> None:
    """Once a worker process has opened its services, serves their metrics on
    METRICS_WORKER_HOST:METRICS_WORKER_PORT, in Prometheus text at any path.

    With several worker processes (`taskiq worker --workers N`) only the first gets the port:
    give them a PROMETHEUS_MULTIPROC_DIR of their own, and it reports all of them.
    """
    running: list[tuple[WSGIServer, Thread]] = []

    @broker.on_event(TaskiqEvents.WORKER_STARTUP)
    async def start_metrics_server(state: TaskiqState) -> None:
        services: Services = state.services
        settings = services.settings
        if not settings.metrics_enabled:
            return
        source: Collector = services.metrics.registry
        if multiprocess_mode():
            source = WorkerFiles(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
        address = (settings.metrics_worker_host, settings.metrics_worker_port)
        try:
            running.append(start_http_server(address[1], address[0], registry=source))
        except OSError as exc:
            logger.info("metrics port taken, by another worker process?", extra={"error": str(exc)})
            return
        logger.info("serving metrics", extra={"host": address[0], "port": address[1]})

    @broker.on_event(TaskiqEvents.WORKER_SHUTDOWN)
    async def stop_metrics_server(state: TaskiqState) -> None:
        for server, thread in running:
            server.shutdown()
            server.server_close()
            thread.join()
        running.clear()
