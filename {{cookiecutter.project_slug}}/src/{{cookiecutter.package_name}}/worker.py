"""The job worker: `taskiq worker {{ cookiecutter.package_name }}.worker:broker`.

taskiq finds the broker as a module attribute; what the worker holds is opened on its startup.
"""

from {{ cookiecutter.package_name }}.config import Settings
from {{ cookiecutter.package_name }}.jobs.worker import create_worker_broker
{% if cookiecutter.use_prometheus %}
from {{ cookiecutter.package_name }}.metrics.worker import serve_worker_metrics
{% endif %}

broker = create_worker_broker(Settings())
{% if cookiecutter.use_prometheus %}
serve_worker_metrics(broker)
{% endif %}
