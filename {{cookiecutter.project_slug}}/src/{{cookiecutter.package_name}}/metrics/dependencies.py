import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from prometheus_client import CollectorRegistry, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from {{ cookiecutter.package_name }}.metrics.collectors import multiprocess_mode
from {{ cookiecutter.package_name }}.services import ServicesDep


class WorkerFiles:
    """The values every worker process wrote, added up: prometheus_client's own
    MultiProcessCollector, except for the files a starting worker has not sized yet.

    A worker creates each file empty and sizes it a moment later; read in between, one such
    file fails the whole scrape, and a worker killed then leaves it empty for good
    (prometheus/client_python issue 1199).
    """

    def __init__(self, directory: Path) -> None:
        self._directory = directory

    def collect(self) -> Iterable[Metric]:
        files = [str(path) for path in self._directory.glob("*.db") if _has_data(path)]
        metrics: Iterable[Metric] = MultiProcessCollector.merge(files)  # type: ignore[no-untyped-call]
        return metrics


def scraped_metrics(request: Request, services: ServicesDep) -> Collector:
    """What one scrape reports: this app's metrics, or with several workers, all of theirs."""
    if multiprocess_mode():
        return WorkerFiles(Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]))
    scrape = CollectorRegistry()
    scrape.register(request.app.state.http_metrics)
    scrape.register(services.metrics.registry)
    return scrape


def _has_data(path: Path) -> bool:
    try:
        return path.stat().st_size > 0
    except FileNotFoundError:  # a live gauge's file, removed as its worker stopped
        return False


ScrapedMetrics = Annotated[Collector, Depends(scraped_metrics)]
