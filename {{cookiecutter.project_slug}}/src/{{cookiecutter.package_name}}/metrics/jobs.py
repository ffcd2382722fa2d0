"""Job metrics: jobs queued by the web processes, and how the job workers ended them."""

from prometheus_client import CollectorRegistry, Counter

from {{ cookiecutter.package_name }}.jobs.queue import JobEvent

_COUNTED: dict[JobEvent, str] = {
    "enqueued": "Jobs queued (a resubmission with a known Idempotency-Key queues none).",
    "completed": "Jobs that ended with PRSM's answer.",
    "failed": "Jobs that ended with an error: not worth retrying, or out of attempts.",
    "retried": "Job attempts that failed for a passing reason and will be tried again.",
}


class JobMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._counters = {
            event: Counter(f"jobs_{event}", documentation, registry=registry)
            for event, documentation in _COUNTED.items()
        }

    def record(self, event: JobEvent) -> None:
        self._counters[event].inc()
