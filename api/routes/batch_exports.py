"""`batch_exports/`: list, create and retrieve exports; creating one creates its Temporal Schedule."""

from urllib.parse import urlencode

from aiohttp import web
from temporalio.service import RPCError

from api.auth import authorize
from api.errors import ApiError, not_found, read_json
from api.keys import CIPHER, POOL, SETTINGS, TEMPORAL
from api.params import path_uuid, query_int
from api.responses import export_body, json_response
from api.routes import Route
from batch_exports import api_keys, exports, runs, schedules
from batch_exports.models import BatchExportIn


async def list_exports(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    limit = query_int(request, "limit", 100, minimum=1, maximum=1000)
    offset = query_int(request, "offset", 0)
    count, page = await exports.list_page(
        request.app[POOL], project_id, request.app[CIPHER], limit=limit, offset=offset
    )

    def link(at: int) -> str:
        return str(request.url.with_query(urlencode({**request.query, "limit": limit, "offset": at})))

    return json_response(
        {
            "count": count,
            "next": link(offset + limit) if offset + limit < count else None,
            "previous": link(max(offset - limit, 0)) if offset > 0 else None,
            "results": [export_body(export) for export in page],
        }
    )


async def create_export(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.WRITE)
    body = BatchExportIn.model_validate(await read_json(request))
    app = request.app
    async with app[POOL].acquire() as conn, conn.transaction():
        export = await exports.insert(conn, project_id, body, app[CIPHER])
        try:
            await schedules.create(app[TEMPORAL], export, app[SETTINGS])
        except (RPCError, RuntimeError) as error:
            # The transaction rolls back: no export without its schedule.
            raise ApiError(
                503,
                f"Temporal could not create the export's schedule, so nothing was saved; try again: {error}",
                type="server_error",
                code="temporal_unavailable",
            ) from error
    return json_response(export_body(export, latest_runs=[]), status=201)


async def retrieve_export(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    export = await exports.get(request.app[POOL], path_uuid(request, "id"), request.app[CIPHER], team_id=project_id)
    if export is None:
        raise not_found()
    return json_response(export_body(export, latest_runs=await runs.latest(request.app[POOL], export.id)))


ROUTES: list[Route] = [
    ("GET", "/batch_exports/", list_exports),
    ("POST", "/batch_exports/", create_export),
    ("GET", "/batch_exports/{id}/", retrieve_export),
]
