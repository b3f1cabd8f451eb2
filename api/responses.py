"""How stored objects look in API responses, and the JSON encoding they share."""

import json
import uuid
from datetime import datetime
from functools import partial
from typing import Any

from aiohttp import web

from batch_exports.backfills import Backfill
from batch_exports.exports import BatchExport
from batch_exports.runs import Run


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


dumps = partial(json.dumps, default=_default)


def json_response(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=dumps)


def run_body(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "status": run.status.value,
        "records_completed": run.records_completed,
        "records_failed": run.records_failed,
        "records_total_count": run.records_total_count,
        "bytes_exported": run.bytes_exported,
        "latest_error": run.latest_error,
        "data_interval_start": run.data_interval_start,
        "data_interval_end": run.data_interval_end,
        "cursor": run.cursor,
        "created_at": run.created_at,
        "finished_at": run.finished_at,
        "last_updated_at": run.last_updated_at,
        "batch_export": run.batch_export_id,
        "backfill": run.backfill_id,
        "workflow_id": run.workflow_id,
        "workflow_run_id": run.workflow_run_id,
    }


def export_body(export: BatchExport, latest_runs: list[Run] | None = None) -> dict[str, Any]:
    """The export as PostHog shows it; a destination's secret fields are never included."""
    body: dict[str, Any] = {
        "id": export.id,
        "team_id": export.team_id,
        "name": export.name,
        "model": export.model,
        "destination": {"type": export.destination_type.value, "config": export.destination_config.public()},
        "interval": export.interval.value,
        "paused": export.paused,
        "created_at": export.created_at,
        "last_updated_at": export.last_updated_at,
        "last_paused_at": export.last_paused_at,
        "start_at": export.start_at,
        "end_at": export.end_at,
        "hogql_query": export.hogql_query,
        "filters": export.filters,
        "schema": export.schema_,
        "timezone": export.timezone,
        "offset_day": export.offset_day,
        "offset_hour": export.offset_hour,
    }
    if latest_runs is not None:
        body["latest_runs"] = [run_body(run) for run in latest_runs]
    return body


def backfill_body(backfill: Backfill, finished_runs: int) -> dict[str, Any]:
    total = backfill.total_runs
    return {
        "id": backfill.id,
        "status": backfill.status,
        "start_at": backfill.start_at,
        "end_at": backfill.end_at,
        "created_at": backfill.created_at,
        "finished_at": backfill.finished_at,
        "last_updated_at": backfill.last_updated_at,
        "team_id": backfill.team_id,
        "batch_export": backfill.batch_export_id,
        "total_records_count": backfill.total_records_count,
        "progress": {
            "total_runs": total,
            "finished_runs": finished_runs,
            "progress": round(finished_runs / total, 4) if total else None,
        },
    }
