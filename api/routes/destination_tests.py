"""Destination checks a person runs before saving or trusting an export (PostHog's test-step routes).

Each runs on the checks' own loop and threads (`api.checks`), within a deadline, never on the threads that serve
requests."""

from typing import Any

from aiohttp import web

from api import openapi as oa
from api.auth import authorize
from api.checks import ChecksBusy, CheckTimedOut
from api.errors import ApiError, not_found, read_json, validation_error
from api.lookups import export_for
from api.openapi import operation
from api.responses import json_response
from api.routes import Route
from api.state import CHECKS, runtime
from batch_exports.exports.validation import DestinationIn, merge_destination
from batch_exports.services import integrations as integrating
from batch_exports.store import api_keys
from connectors.destinations import TYPES, DestinationConfig, check_timed_out, destination, run_step


def _destination_type(raw: str | None, attr: str) -> str:
    if not raw:
        raise validation_error(f"'{attr}' is required: one of {', '.join(TYPES)}.", attr)
    if raw not in TYPES:  # PostHog's: an unknown destination has no checks to list
        raise not_found(f"'{raw[:100]}' is not a destination type; use one of {', '.join(TYPES)}.")
    return raw


def _step_index(body: Any, destination_type: str) -> int:
    step = body.get("step", 0) if isinstance(body, dict) else None
    count = len(destination(destination_type).steps)
    if not isinstance(step, int) or isinstance(step, bool) or not 0 <= step < count:
        raise validation_error(f"'step' must be an integer from 0 to {count - 1}.", "step")
    return step


async def _result(
    request: web.Request, project_id: int, kind: str, config: DestinationConfig, step: int
) -> web.Response:
    context = runtime(request).destinations.for_project(project_id)
    checks = request.app[CHECKS]
    try:
        problem = await checks.run(lambda: run_step(kind, config, context, step))
    except ChecksBusy as busy:
        raise ApiError(429, f"Too many destination checks: {busy}.", code="throttled") from None
    except CheckTimedOut:
        problem = check_timed_out(checks.timeout)
    status = "Passed" if problem is None else "Failed"
    checked = destination(kind).steps[step]
    return json_response(
        {"name": checked.name, "description": checked.description, "result": {"status": status, "message": problem}}
    )


@operation(
    "The checks a destination type has",
    {200: oa.Steps},
    query=(oa.Query("destination", {"type": "string", "enum": list(TYPES)}),),
)
async def list_steps(request: web.Request) -> web.Response:
    """`GET batch_exports/test/?destination=TYPE`: the checks that destination has."""
    await authorize(request, api_keys.READ)
    kind = _destination_type(request.query.get("destination"), "destination")
    steps = [{"name": step.name, "description": step.description} for step in destination(kind).steps]
    return json_response({"steps": steps})


@operation("Run one check against a saved export's destination", {200: oa.StepResult, 429: oa.Error}, body=oa.StepIn)
async def run_step_saved(request: web.Request) -> web.Response:
    """`POST batch_exports/{id}/run_test_step/` `{"step": n}`: a check against a saved export's destination;
    a posted `destination` is merged over the stored one first (the same rules as a PATCH)."""
    export = await export_for(request, api_keys.WRITE, name="id")
    body = await read_json(request)
    step = _step_index(body, export.destination_type)
    config = export.destination_config
    if isinstance(body, dict) and body.get("destination") is not None:
        merged = merge_destination(export.destination_type, config, body["destination"])
        posted = body["destination"].get("config") if isinstance(body["destination"], dict) else None
        rt = runtime(request)
        merged = await integrating.expand(rt.pool, rt.cipher, export.team_id, merged, posted or {})
        config = DestinationIn.model_validate(merged).parsed()
    return await _result(request, export.team_id, export.destination_type, config, step)


@operation(
    "Run one check against a destination before saving it", {200: oa.StepResult, 429: oa.Error}, body=oa.UnsavedStepIn
)
async def run_step_unsaved(request: web.Request) -> web.Response:
    """`POST batch_exports/run_test_step_new/` `{"step": n, "destination": {...}}`: before saving."""
    project_id = await authorize(request, api_keys.WRITE)
    body = await read_json(request)
    if not isinstance(body, dict):
        raise validation_error("The body must be a JSON object with 'step' and 'destination'.")
    rt = runtime(request)
    destination = DestinationIn.model_validate(
        await integrating.expand(rt.pool, rt.cipher, project_id, body.get("destination"))
    )
    step = _step_index(body, destination.type)
    return await _result(request, project_id, destination.type, destination.parsed(), step)


ROUTES: list[Route] = [
    ("GET", "/batch_exports/test/", list_steps),
    ("POST", "/batch_exports/run_test_step_new/", run_step_unsaved),
    ("POST", "/batch_exports/{id}/run_test_step/", run_step_saved),
]
