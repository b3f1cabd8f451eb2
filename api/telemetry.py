"""The gateway's telemetry middleware: every request is counted and timed by its route pattern (never its raw
path: one series per route, whatever ids a caller sends), traced when tracing is on (continuing a caller's
`traceparent`), and its log lines carry the export, run or backfill id its route names."""

import contextlib
import time
from collections.abc import Iterator

from aiohttp import web
from opentelemetry import propagate
from opentelemetry.trace import Span, SpanKind

from api.routes import Handler
from api.state import RUNTIME
from batch_exports.runtime import Runtime
from batch_exports.telemetry.logs import log_context

UNMATCHED = "unmatched"
"""The route of a request no route matched (a 404 or 405)."""


def route_of(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else UNMATCHED


def ids_of(request: web.Request, route: str) -> dict[str, str | None]:
    """The export, run and backfill ids in the request's path, under their names."""
    info = request.match_info
    if "{batch_export_id}" not in route:  # /batch_exports/{id}/...: the id is the export's
        return {"batch_export_id": info.get("id")}
    kind = "backfill_id" if "/backfills/{id}" in route else "run_id"
    return {"batch_export_id": info.get("batch_export_id"), kind: info.get("id")}


@contextlib.contextmanager
def _span(rt: Runtime, request: web.Request, route: str) -> Iterator[Span | None]:
    if rt.tracer is None:
        yield None
        return
    with rt.tracer.start_as_current_span(
        f"{request.method} {route}",
        context=propagate.extract(request.headers),
        kind=SpanKind.SERVER,
        attributes={"http.request.method": request.method, "http.route": route, "url.path": request.path},
    ) as span:
        yield span


@web.middleware
async def telemetry_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    rt = request.app[RUNTIME]
    route = route_of(request)
    began = time.perf_counter()
    status = 500
    with log_context(**ids_of(request, route)), _span(rt, request, route) as span:
        try:
            response = await handler(request)
            status = response.status
            return response
        except web.HTTPException as error:
            status = error.status
            raise
        finally:
            rt.metrics.http_request(request.method, route, status, time.perf_counter() - began)
            if span is not None:
                span.set_attribute("http.response.status_code", status)
