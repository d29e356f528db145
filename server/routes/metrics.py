"""`/metrics`: request counts, latencies, batch sizes and index figures for Prometheus."""

from __future__ import annotations

from litestar import Request, Response, Router, get
from litestar.di import NamedDependency
from litestar.exceptions import PermissionDeniedException

from server.access import whole_index
from server.metrics import CONTENT_TYPE
from server.services import Services


@get("/metrics", summary="Prometheus metrics (text exposition format)", media_type=CONTENT_TYPE,
     description="Figures of the whole index: a key restricted by an access filter gets a 403.")
async def metrics(services: NamedDependency[Services], request: Request) -> Response[str]:
    if not whole_index(request):
        raise PermissionDeniedException(detail="/metrics shows figures of the whole index: it needs a key "
                                               "without an access filter")
    return Response(services.metrics.render(services.index.stats(), batcher_stats(services)),
                    media_type=CONTENT_TYPE)


def batcher_stats(services: Services) -> dict[str, dict[str, float]]:
    """The figures of the app's micro-batchers, by the `kind` label /metrics gives them."""
    if services.batcher is None:
        return {}
    return {"query_batcher": services.batcher.stats.as_dict()}


router = Router(path="/", route_handlers=[metrics])
