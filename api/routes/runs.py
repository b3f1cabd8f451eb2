"""`batch_exports/{id}/runs/`: one run per workflow execution, in cursor pages of 100; cancel and retry."""

from datetime import UTC, datetime, timedelta

from aiohttp import web

from api import openapi as oa
from api.errors import ApiError, not_found, validation_error
from api.lookups import export_for, require_live_export, unchecked_export_id
from api.openapi import operation
from api.pagination import PageRequest, ordering_from, page_body
from api.params import path_uuid, query_datetime
from api.responses import json_response, run_body, stored_run_body
from api.routes import Route
from api.state import runtime
from batch_exports.exports.export import BatchExport
from batch_exports.runs.run import Run
from batch_exports.services import backfills as backfilling
from batch_exports.services import reconciliation
from batch_exports.services.waiting import wait_for
from batch_exports.store import api_keys, runs
from batch_exports.store.runs import RunFilter
from batch_exports.temporal.client import calling_temporal, cancel_workflow
from contracts.statuses import RunStatus

PAGE_SIZE = 100
DEFAULT_INTERVAL_WINDOW = timedelta(days=7)


def _filter(request: web.Request) -> RunFilter:
    statuses = []
    for raw in request.query.getall("status", []):
        try:
            statuses.append(RunStatus(raw))
        except ValueError:
            choices = ", ".join(s.value for s in RunStatus)
            raise validation_error(f"'{raw}' is not a run status; use one of {choices}.", "status") from None
    interval_start = query_datetime(request, "start", relative=True)
    if interval_start is None and request.query.get("ordering", "").lstrip("-") == "data_interval_start":
        interval_start = datetime.now(UTC) - DEFAULT_INTERVAL_WINDOW  # PostHog's default: the last 7 days
    return RunFilter(
        statuses=tuple(statuses),
        created_after=query_datetime(request, "after", relative=True),
        created_before=query_datetime(request, "before", relative=True),
        interval_start=interval_start,
        interval_end=query_datetime(request, "end", relative=True),
    )


@operation(
    "List runs, one per workflow execution",
    {200: oa.RunPage},
    query=(
        oa.CURSOR,
        oa.Query("ordering", {"type": "string", "enum": sorted(runs.ORDERINGS)}),
        oa.Query("status", {"type": "string", "enum": [s.value for s in RunStatus]}, repeatable=True),
        oa.Query("after", oa.DATETIME, "Created at or after."),
        oa.Query("before", oa.DATETIME, "Created before."),
        oa.Query("start", oa.DATETIME, "Data interval starting at or after."),
        oa.Query("end", oa.DATETIME, "Data interval ending at or before."),
    ),
)
async def list_runs(request: web.Request) -> web.Response:
    """The page is shown from its rows; only a run that may have closed unseen becomes a `Run`, to be reconciled.
    The page's statement checks the export is the project's: only an empty page asks whether there is one."""
    project_id, export_id = await unchecked_export_id(request, api_keys.READ)
    ordering = ordering_from(request, runs.ORDERINGS)
    asked = PageRequest.of(request)
    rows = await runs.page(
        runtime(request).pool,
        export_id,
        ordering=ordering,
        limit=PAGE_SIZE + 1,
        position=asked.position,
        backwards=asked.backwards,
        where=_filter(request),
        team_id=project_id,
    )
    if not rows:
        await require_live_export(request, project_id, export_id)
    now = datetime.now(UTC)
    open_ones = [
        runs.to_run(row)
        for row in rows
        if reconciliation.may_have_closed_unseen(row["status"], row["last_updated_at"], now)
    ]
    reconciled = {run.id: run for run in await reconciliation.as_temporal_says(runtime(request), open_ones)}
    field = ordering.lstrip("-")
    body = page_body(
        request,
        rows,
        size=PAGE_SIZE,
        asked=asked,
        key=lambda row: (row[field], row["id"]),
        render=lambda row: run_body(reconciled[row["id"]]) if row["id"] in reconciled else stored_run_body(row),
    )
    return json_response(body)


async def _run(request: web.Request, scope: str) -> tuple[BatchExport, Run]:
    export = await export_for(request, scope)
    run = await runs.get(runtime(request).pool, path_uuid(request, "id"), export.id)
    if run is None:
        raise not_found("Run not found.")
    return export, run


@operation("Retrieve a run (reconciled with Temporal if it closed unseen)", {200: oa.Run})
async def retrieve_run(request: web.Request) -> web.Response:
    """The run; an open one whose execution has closed unseen is reconciled on the spot."""
    _, run = await _run(request, api_keys.READ)
    (run,) = await reconciliation.as_temporal_says(runtime(request), [run])
    return json_response(run_body(run))


@operation("Cancel a Starting or Running run", {200: oa.Cancelled, 202: oa.Cancelled, 503: oa.Error})
async def cancel_run(request: web.Request) -> web.Response:
    """Cancel, then wait (up to `BATCH_EXPORTS_CANCEL_WAIT_SECONDS`) for the export to stop writing: 200 and the
    run reads `Cancelled`; past the wait, 202 with the run's status as it stands."""
    export, run = await _run(request, api_keys.WRITE)
    if not run.status.is_open:
        raise ApiError(400, f"Cannot cancel a run that is in '{run.status.value}' status", code="not_running")
    rt = runtime(request)
    async with calling_temporal("look up the run"):
        # Its execution may have closed unseen (terminated, timed out): then record how, and say so.
        ended = await reconciliation.reconcile_run(rt, run)
    reason = f"cancelled through the API (runs/{run.id}/cancel/)"
    if ended is not None or not await cancel_workflow(rt.client, run.workflow_id, run.workflow_run_id, reason=reason):
        ended = ended or await reconciliation.reconcile_run(rt, run)
        raise ApiError(
            400,
            f"Cannot cancel a run that is in '{ended.value if ended else 'closed'}' status",
            code="not_running",
        )

    async def stopped() -> RunStatus | None:
        now = await runs.get(rt.pool, run.id, export.id)
        return now.status if now is not None and not now.status.is_open else None

    status = await wait_for(stopped, rt.settings.cancel_wait_seconds)
    if status is None:
        current = await runs.get(rt.pool, run.id, export.id)
        return json_response({"cancelled": True, "status": current.status if current else None}, status=202)
    return json_response({"cancelled": True})


@operation("Retry a run: a backfill of exactly its interval", {200: oa.BackfillCreated, 429: oa.Error, 503: oa.Error})
async def retry_run(request: web.Request) -> web.Response:
    """Run the run's interval again, as a one-interval backfill."""
    export, run = await _run(request, api_keys.WRITE)
    rt = runtime(request)
    async with rt.pool.acquire() as conn, conn.transaction():
        backfill = await backfilling.start(
            rt,
            conn,
            export,
            run.data_interval_start,
            run.data_interval_end,
            single_interval=True,
        )
    return json_response({"backfill_id": str(backfill.id)})


ROUTES: list[Route] = [
    ("GET", "/batch_exports/{batch_export_id}/runs/", list_runs),
    ("GET", "/batch_exports/{batch_export_id}/runs/{id}/", retrieve_run),
    ("POST", "/batch_exports/{batch_export_id}/runs/{id}/cancel/", cancel_run),
    ("POST", "/batch_exports/{batch_export_id}/runs/{id}/retry/", retry_run),
]
