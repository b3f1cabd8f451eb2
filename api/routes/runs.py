"""`batch_exports/{id}/runs/`: a run per workflow execution, newest first, in cursor pages."""

import base64
import binascii
import uuid
from datetime import datetime

from aiohttp import web

from api.auth import authorize
from api.errors import not_found, validation_error
from api.keys import POOL
from api.params import path_uuid
from api.responses import json_response, run_body
from api.routes import Route
from batch_exports import api_keys, runs

PAGE_SIZE = 100


def _encode_cursor(created_at: datetime, run_id: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(f"{created_at.isoformat()}|{run_id}".encode()).decode()


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        created_at, _, run_id = base64.urlsafe_b64decode(cursor.encode()).decode().partition("|")
        return datetime.fromisoformat(created_at), uuid.UUID(run_id)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise validation_error("'cursor' is not a cursor this API gave out.", "cursor") from None


async def _export_id(request: web.Request, project_id: int) -> uuid.UUID:
    export_id = path_uuid(request, "batch_export_id")
    owned = await request.app[POOL].fetchval(
        "SELECT 1 FROM batch_exports WHERE id = $1 AND team_id = $2 AND NOT deleted", export_id, project_id
    )
    if not owned:
        raise not_found()
    return export_id


async def list_runs(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    export_id = await _export_id(request, project_id)
    ordering = request.query.get("ordering", "-created_at")
    if ordering != "-created_at":
        raise validation_error("'ordering' must be '-created_at'.", "ordering")
    cursor = request.query.get("cursor")
    page = await runs.page_newest_first(
        request.app[POOL], export_id, limit=PAGE_SIZE + 1, before=_decode_cursor(cursor) if cursor else None
    )
    has_next = len(page) > PAGE_SIZE
    page = page[:PAGE_SIZE]
    next_url = None
    if has_next:
        last = page[-1]
        next_url = str(request.url.update_query(cursor=_encode_cursor(last.created_at, last.id)))
    return json_response({"next": next_url, "previous": None, "results": [run_body(run) for run in page]})


async def retrieve_run(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    export_id = await _export_id(request, project_id)
    run = await runs.get(request.app[POOL], path_uuid(request, "id"), export_id)
    if run is None:
        raise not_found()
    return json_response(run_body(run))


ROUTES: list[Route] = [
    ("GET", "/batch_exports/{batch_export_id}/runs/", list_runs),
    ("GET", "/batch_exports/{batch_export_id}/runs/{id}/", retrieve_run),
]
