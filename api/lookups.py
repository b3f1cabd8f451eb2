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
    project_id = await authorize(request, scope)
    export_id = path_uuid(request, name)
    if await exports.team_of(runtime(request).pool, export_id, include_deleted=False) != project_id:
        raise not_found("Batch export not found.")
    return export_id
