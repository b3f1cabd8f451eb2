"""`batch_exports/{id}/backfills/`: backfills of an export, in cursor pages of 50, newest first."""

from datetime import UTC, datetime

from aiohttp import web

from api import openapi as oa
from api.errors import ApiError, not_found, read_json, validation_error
from api.keys import POOL, SETTINGS, TEMPORAL
from api.lookups import export_for
from api.openapi import operation
from api.pagination import PageRequest, page_body
from api.params import path_uuid
from api.responses import backfill_body, json_response
from api.routes import Route
from batch_exports import api_keys, backfills
from batch_exports.backfills import Backfill
from batch_exports.exports import BatchExport

PAGE_SIZE = 50


async def create_backfill_for(request: web.Request, export: BatchExport) -> Backfill:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error("The body must be a JSON object with start_at and end_at.")
    now = datetime.now(UTC)
    start_at, end_at = backfills.bounds(export, body.get("start_at"), body.get("end_at"), now)
    app = request.app
    async with app[POOL].acquire() as conn, conn.transaction():
        return await backfills.start(conn, app[TEMPORAL], app[SETTINGS], export, start_at, end_at)


async def _render(request: web.Request, backfill: Backfill) -> dict[str, object]:
    finished = backfill.finished_runs
    if backfill.status in backfills.OPEN_STATUSES:
        finished = await backfills.finished_runs(request.app[POOL], backfill.id)
    return backfill_body(backfill, finished)


@operation("List backfills, newest first", {200: oa.BackfillPage}, query=(oa.CURSOR,))
async def list_backfills(request: web.Request) -> web.Response:
    export = await export_for(request, api_keys.READ)
    asked = PageRequest.of(request)
    page = await backfills.page(
        request.app[POOL], export.id, limit=PAGE_SIZE + 1, position=asked.position, backwards=asked.backwards
    )
    rendered = {b.id: await _render(request, b) for b in page[:PAGE_SIZE]}
    body = page_body(
        request,
        page,
        size=PAGE_SIZE,
        asked=asked,
        key=lambda b: (b.created_at, b.id),
        render=lambda b: rendered[b.id],
    )
    return json_response(body)


@operation(
    "Backfill every interval of a range", {201: oa.BackfillCreated, 429: oa.Error, 503: oa.Error}, body=oa.BackfillIn
)
async def create_backfill(request: web.Request) -> web.Response:
    export = await export_for(request, api_keys.WRITE)
    backfill = await create_backfill_for(request, export)
    return json_response({"backfill_id": str(backfill.id)}, status=201)


async def _backfill(request: web.Request, scope: str) -> Backfill:
    export = await export_for(request, scope)
    backfill = await backfills.get(request.app[POOL], path_uuid(request, "id"), export.id)
    if backfill is None:
        raise not_found("Backfill not found.")
    return backfill


@operation("Retrieve a backfill with its progress", {200: oa.Backfill})
async def retrieve_backfill(request: web.Request) -> web.Response:
    return json_response(await _render(request, await _backfill(request, api_keys.READ)))


@operation("Cancel a running backfill and its runs", {200: oa.Cancelled, 503: oa.Error})
async def cancel_backfill(request: web.Request) -> web.Response:
    backfill = await _backfill(request, api_keys.WRITE)
    if backfill.status not in backfills.OPEN_STATUSES:
        raise ApiError(
            400,
            f"The backfill has already ended ({backfill.status}); only a running one can be cancelled.",
            code="not_running",
        )
    if not await backfills.cancel(request.app[TEMPORAL], backfill):
        raise ApiError(400, "The backfill has already ended; reconciliation records how.", code="not_running")
    return json_response({"cancelled": True})


ROUTES: list[Route] = [
    ("GET", "/batch_exports/{batch_export_id}/backfills/", list_backfills),
    ("POST", "/batch_exports/{batch_export_id}/backfills/", create_backfill),
    ("GET", "/batch_exports/{batch_export_id}/backfills/{id}/", retrieve_backfill),
    ("POST", "/batch_exports/{batch_export_id}/backfills/{id}/cancel/", cancel_backfill),
]
