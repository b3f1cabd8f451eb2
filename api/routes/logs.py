"""`batch_exports/{id}/logs/` and `runs/{run_id}/logs/`: log entries, newest first."""

from aiohttp import web

from api import openapi as oa
from api.errors import not_found, validation_error
from api.lookups import export_id_for
from api.openapi import operation
from api.params import path_uuid, query_datetime, query_int
from api.responses import json_response
from api.routes import Route
from api.state import runtime
from batch_exports.store import api_keys, logs, runs

LOG_QUERY = (
    oa.Query("limit", {"type": "integer", "minimum": 1, "maximum": 500}, "How many entries (50 by default)."),
    oa.Query("instance_id", {"type": "string"}, "Only the entries of this workflow execution (its run id)."),
    oa.Query("after", oa.DATETIME),
    oa.Query("before", oa.DATETIME),
    oa.Query("level", {"type": "string", "enum": [level.value for level in logs.Level]}, repeatable=True),
    oa.Query("search", {"type": "string"}, "Text the message contains."),
)


def _levels(request: web.Request) -> tuple[logs.Level, ...]:
    levels = []
    for raw in request.query.getall("level", []):
        for part in raw.split(","):
            try:
                levels.append(logs.Level(part.strip().upper()))
            except ValueError:
                choices = ", ".join(level.value for level in logs.Level)
                raise validation_error(f"'{part}' is not a log level; use one of {choices}.", "level") from None
    return tuple(levels)


async def _entries(request: web.Request, run_id_name: str | None) -> web.Response:
    export_id = await export_id_for(request, api_keys.READ)
    run_id = None
    if run_id_name:
        run_id = path_uuid(request, run_id_name)
        if await runs.get(runtime(request).pool, run_id, export_id) is None:
            raise not_found("Run not found.")
    entries = await logs.search(
        runtime(request).pool,
        batch_export_id=export_id,
        run_id=run_id,
        limit=query_int(request, "limit", 50, minimum=1, maximum=500),
        instance_id=request.query.get("instance_id") or None,
        after=query_datetime(request, "after"),
        before=query_datetime(request, "before"),
        levels=_levels(request),
        text=request.query.get("search") or None,
    )
    results = [entry.model_dump(mode="json") for entry in entries]
    return json_response({"count": len(results), "next": None, "previous": None, "results": results})


@operation(
    "Log entries of a batch export, newest first",
    {200: oa.Logs},
    query=LOG_QUERY,
)
async def export_logs(request: web.Request) -> web.Response:
    return await _entries(request, None)


@operation(
    "Log entries of a run, newest first",
    {200: oa.Logs},
    query=LOG_QUERY,
)
async def run_logs(request: web.Request) -> web.Response:
    return await _entries(request, "id")


ROUTES: list[Route] = [
    ("GET", "/batch_exports/{batch_export_id}/logs/", export_logs),
    ("GET", "/batch_exports/{batch_export_id}/runs/{id}/logs/", run_logs),
]
