from typing import Annotated

from fastapi import APIRouter, Header, Response
from prometheus_client.exposition import choose_encoder

from {{ cookiecutter.package_name }}.metrics.dependencies import ScrapedMetrics

METRICS_PATH = "/metrics"

router = APIRouter(include_in_schema=False)


@router.get(METRICS_PATH)
def metrics(source: ScrapedMetrics, accept: Annotated[str, Header()] = "") -> Response:
    """Prometheus text, or OpenMetrics when the scraper asks for it."""
    encode, content_type = choose_encoder(accept)
    return Response(encode(source), media_type=content_type)
