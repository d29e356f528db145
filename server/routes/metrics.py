"""`/metrics`: request counts, latencies, batch sizes and index figures for Prometheus."""

from __future__ import annotations

from litestar import Response, Router, get
from litestar.di import NamedDependency

from server.metrics import CONTENT_TYPE
from server.services import Services


@get("/metrics", summary="Prometheus metrics (text exposition format)", media_type=CONTENT_TYPE)
async def metrics(services: NamedDependency[Services]) -> Response[str]:
    return Response(services.metrics.render(services.index.stats()), media_type=CONTENT_TYPE)


router = Router(path="/", route_handlers=[metrics])
