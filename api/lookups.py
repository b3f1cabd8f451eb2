"""Finding the objects a route names, within the caller's project: 404 for anything else."""

import uuid

from aiohttp import web

from api.auth import authorize
from api.errors import not_found
from api.params import path_uuid
from api.state import runtime
from batch_exports.exports.export import BatchExport
from batch_exports.store import exports


async def export_for(request: web.Request, scope: str, *, name: str = "batch_export_id") -> BatchExport:
    """The live export the path names, once the caller may use `scope` on its project."""
    project_id = await authorize(request, scope)
    rt = runtime(request)
    export = await exports.get(rt.pool, path_uuid(request, name), rt.cipher, team_id=project_id)
    if export is None:
        raise not_found("Batch export not found.")
    return export


async def export_id_for(request: web.Request, scope: str, *, name: str = "batch_export_id") -> uuid.UUID:
    """The id of the live export the path names, once the caller may use `scope` on its project: for a route that
    reads what belongs to the export (its runs, backfills, logs) and not the export itself, whose config
    `export_for` decrypts and validates."""
    project_id, export_id = await unchecked_export_id(request, scope, name=name)
    await require_live_export(request, project_id, export_id)
    return export_id


async def unchecked_export_id(
    request: web.Request, scope: str, *, name: str = "batch_export_id"
) -> tuple[int, uuid.UUID]:
    """The caller's project, once the caller may use `scope` on it, and the id of the export the path names, not yet
    known to be the project's live export: for a read that guards itself (it finds nothing unless it is, as
    `runs.page` given the project) and calls `require_live_export` when it finds nothing. It saves a statement."""
    return await authorize(request, scope), path_uuid(request, name)


async def require_live_export(request: web.Request, project_id: int, export_id: uuid.UUID) -> None:
    """404 unless `export_id` is a live export of project `project_id`."""
    if await exports.team_of(runtime(request).pool, export_id, include_deleted=False) != project_id:
        raise not_found("Batch export not found.")
