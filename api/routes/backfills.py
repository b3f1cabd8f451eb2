"""`batch_exports/{id}/backfills/`: backfills of an export, in cursor pages of 50, newest first."""

from datetime import UTC, datetime

from aiohttp import web

from api import openapi as oa
from api.errors import ApiError, not_found, read_json, validation_error
from api.lookups import export_for
from api.openapi import operation
from api.pagination import PageRequest, ordering_from, page_body
from api.params import path_uuid, query_bool
from api.responses import backfill_body, json_response
from api.routes import Route
from api.state import runtime
from batch_exports.exports.export import BatchExport
from batch_exports.runs.run import Backfill, BackfillKind
from batch_exports.services import backfills as backfilling
from batch_exports.services import estimates
from batch_exports.services.waiting import wait_for
from batch_exports.store import api_keys, backfills, runs
from contracts.statuses import BackfillStatus

PAGE_SIZE = 50


DRY_RUN = oa.Query("dry_run", {"type": "boolean"}, "Answer what the backfill would do (an estimate); start nothing.")


async def create_backfill_for(request: web.Request, export: BatchExport) -> tuple[dict[str, object], int]:
    """Start the backfill the body names (`start_at`/`end_at`, either null for an open end) and answer with its
    id and resolved range; with `?dry_run=true`, answer its estimate instead and start nothing."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error("The body must be a JSON object with start_at and end_at.")
    dry_run = query_bool(request, "dry_run")
    rt = runtime(request)
    bounds = await backfilling.resolve(rt, export, body, datetime.now(UTC))
    if dry_run:
        return (await estimates.estimate(rt, export, bounds.start_at, bounds.end_at)).body(), 200
    async with rt.pool.acquire() as conn, conn.transaction():
        backfill = await backfilling.start(rt, conn, export, bounds.start_at, bounds.end_at)
    started = {"backfill_id": str(backfill.id), "start_at": bounds.start_at.isoformat(),
               "end_at": bounds.end_at.isoformat(), "start_from_data": bounds.start_from_data}  # fmt: skip
    return started, 201


async def _render(request: web.Request, backfill: Backfill) -> dict[str, object]:
    """The backfill with its progress counted from its runs as they are now (whatever closed them)."""
    finished = backfill.finished_runs
    if backfill.status is BackfillStatus.COMPLETED and backfill.total_runs:
        finished = backfill.total_runs
    elif backfill.start_at is not None and backfill.end_at is not None:
        own = backfill.id if backfill.kind is BackfillKind.API else None  # the others count any run of an interval
        progress = await runs.progress_in_range(
            runtime(request).pool, backfill.batch_export_id, backfill.start_at, backfill.end_at, backfill_id=own
        )
        finished = progress.finished
    return backfill_body(backfill, finished)


@operation(
    "List backfills, newest first",
    {200: oa.BackfillPage},
    query=(oa.CURSOR, oa.Query("ordering", {"type": "string", "enum": list(backfills.ORDERINGS)})),
)
async def list_backfills(request: web.Request) -> web.Response:
    export = await export_for(request, api_keys.READ)
    asked = PageRequest.of(request)
    ordering = ordering_from(request, backfills.ORDERINGS)
    field = ordering.lstrip("-")
    page = await backfills.page(
        runtime(request).pool,
        export.id,
        ordering=ordering,
        limit=PAGE_SIZE + 1,
        position=asked.position,
        backwards=asked.backwards,
    )
    rendered = {b.id: await _render(request, b) for b in page[:PAGE_SIZE]}
    body = page_body(
        request,
        page,
        size=PAGE_SIZE,
        asked=asked,
        key=lambda b: (getattr(b, field) or b.created_at, b.id),
        render=lambda b: rendered[b.id],
    )
    return json_response(body)


@operation(
    "Backfill every interval of a range (or, with dry_run, estimate it)",
    {200: oa.BackfillEstimate, 201: oa.BackfillCreated, 429: oa.Error, 503: oa.Error},
    body=oa.BackfillIn,
    query=(DRY_RUN,),
)
async def create_backfill(request: web.Request) -> web.Response:
    body, status = await create_backfill_for(request, await export_for(request, api_keys.WRITE))
    return json_response(body, status=status)


async def _backfill(request: web.Request, scope: str) -> Backfill:
    export = await export_for(request, scope)
    backfill = await backfills.get(runtime(request).pool, path_uuid(request, "id"), export.id)
    if backfill is None:
        raise not_found("Backfill not found.")
    return backfill


@operation("Retrieve a backfill with its progress", {200: oa.Backfill})
async def retrieve_backfill(request: web.Request) -> web.Response:
    return json_response(await _render(request, await _backfill(request, api_keys.READ)))


@operation("Cancel a running backfill and its runs", {200: oa.Cancelled, 202: oa.Cancelled, 503: oa.Error})
async def cancel_backfill(request: web.Request) -> web.Response:
    """Cancel, then wait (up to `BATCH_EXPORTS_CANCEL_WAIT_SECONDS`) until its runs have closed and it reads
    `Cancelled`: 200; past the wait, 202 with its status as it stands."""
    backfill = await _backfill(request, api_keys.WRITE)
    if not backfill.status.is_open:
        raise ApiError(400, f"Cannot cancel a backfill that is in '{backfill.status.value}' status", code="not_running")
    rt = runtime(request)
    reason = f"cancelled through the API (backfills/{backfill.id}/cancel/)"
    if backfill.workflow_id is None:
        raise ApiError(
            400,
            "This backfill was made with `temporal schedule backfill`: the schedule starts its runs, so cancel those "
            "runs (runs/{id}/cancel/) or pause the export",
            code="not_cancellable",
        )
    if not await backfilling.cancel(rt.client, backfill, reason=reason):
        raise ApiError(400, "Cannot cancel a backfill that has already ended.", code="not_running")

    async def stopped() -> BackfillStatus | None:
        now = await backfills.get(rt.pool, backfill.id)
        return now.status if now is not None and not now.status.is_open else None

    status = await wait_for(stopped, rt.settings.cancel_wait_seconds)
    if status is None:
        current = await backfills.get(rt.pool, backfill.id)
        return json_response({"cancelled": True, "status": current.status if current else None}, status=202)
    return json_response({"cancelled": True})


ROUTES: list[Route] = [
    ("GET", "/batch_exports/{batch_export_id}/backfills/", list_backfills),
    ("POST", "/batch_exports/{batch_export_id}/backfills/", create_backfill),
    ("GET", "/batch_exports/{batch_export_id}/backfills/{id}/", retrieve_backfill),
    ("POST", "/batch_exports/{batch_export_id}/backfills/{id}/cancel/", cancel_backfill),
]
