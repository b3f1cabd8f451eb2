"""`batch_exports/`: exports and their schedules, changed together in one request."""

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api import inputs, offset_pages
from api import openapi as oa
from api.auth import authorize
from api.errors import read_json, validation_error
from api.lookups import export_for
from api.openapi import operation
from api.params import query_bool
from api.responses import export_body, json_response
from api.routes import Route
from api.routes.backfills import DRY_RUN, create_backfill_for
from api.state import runtime
from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import BatchExportIn, Limits, merge_destination
from batch_exports.runtime import Runtime
from batch_exports.services import estimates, lifecycle, reconciliation
from batch_exports.services import integrations as integrating
from batch_exports.store import api_keys, exports, runs
from connectors.destinations.network import hosts
from connectors.sources import open_events, regex_subset
from connectors.sources.events import EventSelection
from connectors.sources.filters import regex_values
from connectors.sources.hogql import parse_query
from contracts.intervals import Interval


async def validated(rt: Runtime, data: Any) -> BatchExportIn:
    """The body as an export, validated in a thread (parsing queries and filters, DST checks: the event loop
    keeps serving meanwhile) within the settings' limits."""
    limits = Limits.of(rt.settings)
    return await inputs.off_the_loop(lambda: BatchExportIn.model_validate(data, context=limits))


async def check_host(rt: Runtime, project_id: int, body: BatchExportIn) -> None:
    """A destination may not reach this network's own addresses unless the settings allow it, nor this
    service's own databases; its host must resolve."""
    try:
        await hosts.ensure_allowed_host(body.destination.parsed(), rt.destinations.for_project(project_id))
    except hosts.HostRefused as refused:
        raise validation_error(str(refused), f"destination__config__{refused.field}") from None
    except OSError as error:
        endpoint = body.destination.parsed().endpoint()
        raise validation_error(
            f"The host could not be resolved now: {error}", f"destination__config__{endpoint.field if endpoint else ''}"
        ) from None


async def check_with_source(rt: Runtime, body: BatchExportIn) -> None:
    """What only the source, which runs the export's query, can say: its regular expressions and its types."""
    query = parse_query(body.hogql_query) if body.hogql_query else None
    selection = EventSelection(filters=tuple(body.filters or ()), query=query)
    source = open_events(rt.source, 0, selection)
    for index, pattern in regex_values(body.filters or []):
        if problem := regex_subset.regex_problem(pattern):
            raise validation_error(
                f"The regular expression is outside the subset filters take: {problem}.", f"filters__{index}__value"
            )
        if problem := await source.regex_problem(pattern):
            raise validation_error(f"Not a valid regular expression: {problem}", f"filters__{index}__value")
    if (body.hogql_query or body.filters) and (problem := await source.type_check()):
        attr = "hogql_query" if body.hogql_query else "filters"
        raise validation_error(f"The {attr} does not fit the event columns' types: {problem}", attr)


async def _estimate_unpause(rt: Runtime, export: BatchExport) -> dict[str, Any]:
    gap = await lifecycle.unpause_gap(rt, export, datetime.now(UTC))
    found = await estimates.estimate(rt, export, *gap, missing_only=True) if gap else estimates.NOTHING
    return found.body()


PATCH_BODY = {"type": "object", "description": "Any fields of a batch export; a destination config is merged."}


@operation("List batch exports, newest first", {200: oa.ExportPage}, query=offset_pages.QUERY)
async def list_exports(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    limit, offset = offset_pages.asked(request)
    rt = runtime(request)
    count, page = await exports.list_page(rt.pool, project_id, rt.cipher, limit=limit, offset=offset)
    return json_response(offset_pages.page_body(request, count, limit, offset, [export_body(e) for e in page]))


@operation(
    "Create a batch export and its schedule", {201: oa.BatchExport, 429: oa.Error, 503: oa.Error}, body=BatchExportIn
)
async def create_export(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.WRITE)
    rt = runtime(request)
    data = await read_json(request)
    if isinstance(data, dict):
        data["destination"] = await integrating.expand(rt.pool, rt.cipher, project_id, data.get("destination"))
    body = await validated(rt, data)
    await check_host(rt, project_id, body)
    await check_with_source(rt, body)
    export = await lifecycle.create(rt, project_id, body)
    return json_response(export_body(export, latest_runs=[]), status=201)


@operation("Retrieve a batch export with its latest runs", {200: oa.BatchExport})
async def retrieve_export(request: web.Request) -> web.Response:
    export = await export_for(request, api_keys.READ, name="id")
    rt = runtime(request)
    latest = await reconciliation.as_temporal_says(rt, await runs.latest(rt.pool, export.id))
    return json_response(export_body(export, latest_runs=latest))


@operation(
    "Update a batch export (config merged) and its schedule", {200: oa.BatchExport, 503: oa.Error}, body=PATCH_BODY
)
async def update_export(request: web.Request) -> web.Response:
    """PUT and PATCH: fields given replace the stored ones; a destination config is merged into the stored one.

    PUT is a full update: it must name the required fields (`name`, `interval`, `destination`), as PostHog's
    does. A new interval drops the offsets that do not apply to it.
    """
    export = await export_for(request, api_keys.WRITE, name="id")
    patch = await read_json(request)
    if not isinstance(patch, dict):
        raise validation_error("The body must be a JSON object.")
    if request.method == "PUT" and (missing := [f for f in ("name", "interval", "destination") if f not in patch]):
        raise validation_error("This field is required.", missing[0], code="required")
    merged = export.as_input()
    if patch.get("interval") in Interval._value2member_map_:
        interval = Interval(patch["interval"])
        if interval is not Interval.WEEK:
            merged["offset_day"] = None
        if not interval.is_calendar:
            merged["offset_hour"] = None
    for field, value in patch.items():
        if field == "destination":
            value = merge_destination(export.destination_type, export.destination_config, value)
        merged[field] = value
    rt = runtime(request)
    posted = patch["destination"].get("config") if isinstance(patch.get("destination"), dict) else None
    merged["destination"] = await integrating.expand(
        rt.pool, rt.cipher, export.team_id, merged["destination"], posted or {}
    )
    body = await validated(rt, merged)
    await check_host(rt, export.team_id, body)
    await check_with_source(rt, body)
    updated = await lifecycle.update(rt, export, body)
    return json_response(export_body(updated, latest_runs=await runs.latest(rt.pool, updated.id)))


@operation("Delete a batch export, its schedule, and cancel its runs", {204: None, 202: oa.Deleting, 503: oa.Error})
async def delete_export(request: web.Request) -> web.Response:
    """Delete, then wait (up to `BATCH_EXPORTS_CANCEL_WAIT_SECONDS`) for its runs to stop writing: 204 once they
    have; past the wait, 202 with the runs still stopping."""
    export = await export_for(request, api_keys.WRITE, name="id")
    still_open = await lifecycle.delete(runtime(request), export)
    if still_open:
        return json_response({"deleted": True, "stopping_runs": [str(run) for run in still_open]}, status=202)
    return web.Response(status=204)


@operation("Pause a batch export", {200: oa.Paused, 409: oa.Error, 503: oa.Error})
async def pause_export(request: web.Request) -> web.Response:
    """Pause; the answer is what Temporal holds after the call (409 when the Temporal UI or CLI changed it
    meanwhile)."""
    export = await export_for(request, api_keys.WRITE, name="id")
    return json_response({"paused": await lifecycle.pause(runtime(request), export)})


@operation(
    "Unpause a batch export, optionally backfilling the paused gap (with dry_run: estimate that backfill)",
    {200: oa.Unpaused, 409: oa.Error, 429: oa.Error, 503: oa.Error},
    body=oa.UnpauseIn,
    query=(DRY_RUN,),
)
async def unpause_export(request: web.Request) -> web.Response:
    """Unpause; with `{"backfill": true}`, also backfill the intervals missed while paused (on an export that is
    not paused: the span its latest unpause without backfill gave up); with `?dry_run=true` as well, answer that
    backfill's estimate and change nothing. The answer is what Temporal holds."""
    export = await export_for(request, api_keys.WRITE, name="id")
    options: Any = await read_json(request) if request.can_read_body else {}
    backfill = bool(options.get("backfill")) if isinstance(options, dict) else False
    if query_bool(request, "dry_run"):
        if not backfill:
            raise validation_error('dry_run estimates the backfill: it needs {"backfill": true}.', "dry_run")
        return json_response(await _estimate_unpause(runtime(request), export))
    paused, started = await lifecycle.unpause(runtime(request), export, backfill=backfill, now=datetime.now(UTC))
    body: dict[str, Any] = {"paused": paused}
    if started is not None:
        body["backfill_id"] = str(started.id)
    return json_response(body)


@operation(
    "Backfill a range (deprecated: use backfills/)",
    {200: oa.BackfillOrEstimate, 429: oa.Error, 503: oa.Error},
    body=oa.BackfillIn,
    query=(DRY_RUN,),
)
async def deprecated_backfill(request: web.Request) -> web.Response:
    """`POST batch_exports/{id}/backfill/`: the older spelling of creating a backfill."""
    export = await export_for(request, api_keys.WRITE, name="id")
    body, status = await create_backfill_for(request, export)
    return json_response({"backfill_id": body["backfill_id"]} if status == 201 else body)  # its old shape


ROUTES: list[Route] = [
    ("GET", "/batch_exports/", list_exports),
    ("POST", "/batch_exports/", create_export),
    ("GET", "/batch_exports/{id}/", retrieve_export),
    ("PUT", "/batch_exports/{id}/", update_export),
    ("PATCH", "/batch_exports/{id}/", update_export),
    ("DELETE", "/batch_exports/{id}/", delete_export),
    ("POST", "/batch_exports/{id}/pause/", pause_export),
    ("POST", "/batch_exports/{id}/unpause/", unpause_export),
    ("POST", "/batch_exports/{id}/backfill/", deprecated_backfill),
]
