"""How stored objects look in API responses, and the JSON encoding they share."""

from collections.abc import Mapping
from typing import Any

import orjson
from aiohttp import web

from api import openapi as oa
from batch_exports.exports.export import BatchExport
from batch_exports.runs.run import Backfill, Run
from connectors.json_encoding import default

JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NON_STR_KEYS
"""As `json.dumps(default=default)` wrote them: UTC datetimes with `Z`, keys that are not strings as strings."""


def dumps(body: Any) -> bytes:
    """A body as JSON, in native code (datetimes, UUIDs and enums without a call back into Python)."""
    return orjson.dumps(body, default=default, option=JSON_OPTIONS)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(body), status=status, content_type="application/json", charset="utf-8")


_RUN_SHOWN = tuple((field.alias or name, name) for name, field in oa.Run.model_fields.items())
"""Each field of a run: the name the API shows it under, and its name in the run domain."""


def run_body(run: Run) -> dict[str, Any]:
    """A run as `oa.Run` shows it, its values left for `dumps` to write (a page renders a hundred: through the
    schema's model, validating and dumping each, they cost more than the rest of the request)."""
    return {shown: getattr(run, name) for shown, name in _RUN_SHOWN}


def stored_run_body(row: Mapping[str, Any]) -> dict[str, Any]:
    """What `run_body` shows of the `Run` a row of `runs.RUN_COLUMNS` holds, without making the `Run` (each value
    taken by its column's name: the two schemas' field orders need not agree)."""
    return {shown: row[name] for shown, name in _RUN_SHOWN}


def export_body(export: BatchExport, latest_runs: list[Run] | None = None) -> dict[str, Any]:
    """The export as PostHog shows it; a destination's secret fields are never included."""
    body = oa.BatchExport.model_validate(
        export.model_dump(exclude={"destination"})  # its shown fields
        | {
            "destination": {"type": export.destination.type, "config": export.destination.config.public()},
            "schema": export.schema_,
            "latest_runs": [run_body(run) for run in latest_runs or []],
        }
    )
    dumped = body.model_dump(mode="json", by_alias=True)
    if latest_runs is None:
        del dumped["latest_runs"]  # lists show exports without their runs
    return dumped


def backfill_body(backfill: Backfill, finished_runs: int) -> dict[str, Any]:
    total = backfill.total_runs
    progress = {
        "total_runs": total,
        "finished_runs": finished_runs,
        "progress": round(finished_runs / total, 4) if total else None,
    }
    body = oa.Backfill.model_validate(
        backfill.model_dump()
        | {"batch_export": backfill.batch_export_id, "team": backfill.team_id, "progress": progress}
    )
    return body.model_dump(mode="json")
