from pydantic import BaseModel, Field


class MetricsSettings(BaseModel):
    metrics_enabled: bool = Field(
        default=True,
        description="Record HTTP metrics and serve /metrics; off, /metrics is a 404.",
    )
{% if cookiecutter.use_background_jobs %}
    metrics_worker_host: str = Field(
        default="127.0.0.1",
        description="Where a job worker serves its metrics; 0.0.0.0 for every interface.",
    )
    metrics_worker_port: int = Field(default=9464, ge=1, le=65535)
{% endif %}
