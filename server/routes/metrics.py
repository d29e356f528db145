"""`/metrics`: request counts, latencies, batch sizes and index figures for Prometheus."""

from __future__ import annotations

from typing import Any

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
    return Response(services.metrics.render(services.index.stats(), batcher_stats(services.extras)),
                    media_type=CONTENT_TYPE)


def batcher_stats(extras: dict[str, Any]) -> dict[str, dict[str, float]]:
    """The figures of every micro-batcher the app keeps (anything with `stats.as_dict()`)."""
    found = {}
    for kind, value in extras.items():
        as_dict = getattr(getattr(value, "stats", None), "as_dict", None)
        if callable(as_dict):
            found[kind] = as_dict()
    return found


router = Router(path="/", route_handlers=[metrics])
