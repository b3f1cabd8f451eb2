"""How stored objects look in API responses, and the JSON encoding they share."""

import json
from functools import partial
from typing import Any

from aiohttp import web

from api import openapi as oa
from batch_exports.store.backfills import Backfill
from batch_exports.store.exports import BatchExport
from batch_exports.store.runs import Run
from connectors.json_encoding import default

dumps = partial(json.dumps, default=default)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


def run_body(run: Run) -> dict[str, Any]:
    body = oa.Run.model_validate(
        run.model_dump()
        | {"batch_export": run.batch_export_id, "backfill": run.backfill_id, "replaced_run": run.replaced_run_id}
    )
    return body.model_dump(mode="json")


def export_body(export: BatchExport, latest_runs: list[Run] | None = None) -> dict[str, Any]:
    """The export as PostHog shows it; a destination's secret fields are never included."""
    body = oa.BatchExport.model_validate(
        export.model_dump(exclude={"destination_config"})
        | {
            "destination": {"type": export.destination_type, "config": export.destination_config.public()},
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
