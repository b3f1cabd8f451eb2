"""Finding the objects a route names, within the caller's project: 404 for anything else."""

from aiohttp import web

from api.auth import authorize
from api.errors import not_found
from api.keys import CIPHER, POOL
from api.params import path_uuid
from batch_exports import exports
from batch_exports.exports import BatchExport


async def export_for(request: web.Request, scope: str, *, name: str = "batch_export_id") -> BatchExport:
    """The live export the path names, once the caller may use `scope` on its project."""
    project_id = await authorize(request, scope)
    export = await exports.get(request.app[POOL], path_uuid(request, name), request.app[CIPHER], team_id=project_id)
    if export is None:
        raise not_found("Batch export not found.")
    return export
