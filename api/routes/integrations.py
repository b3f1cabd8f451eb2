"""`integrations/`: credentials a project keeps once and its exports name (`integration_id`), PostHog's shape.

`config` is readable; `sensitive_config` is write-only and never in a response. Deleting one that live exports
name is a 409 that lists them.
"""

from aiohttp import web

from api import offset_pages
from api import openapi as oa
from api.auth import authorize
from api.errors import ApiError, not_found, read_json
from api.openapi import operation
from api.params import path_uuid
from api.responses import json_response
from api.routes import Route
from api.state import runtime
from batch_exports.services import integrations as integrating
from batch_exports.store import api_keys, integrations
from batch_exports.store.integrations import Integration


def integration_body(integration: Integration) -> dict[str, object]:
    """The integration as the API shows it: everything but its `sensitive_config`."""
    fields = {name: getattr(integration, name) for name in oa.Integration.model_fields}
    return oa.Integration.model_validate(fields).model_dump(mode="json")


async def _integration(request: web.Request, scope: str) -> Integration:
    project_id = await authorize(request, scope)
    rt = runtime(request)
    found = await integrations.get(rt.pool, path_uuid(request, "id"), project_id, rt.cipher)
    if found is None:
        raise not_found("Integration not found.")
    return found


@operation("List the project's integrations, newest first", {200: oa.IntegrationPage}, query=offset_pages.QUERY)
async def list_integrations(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.INTEGRATION_READ)
    limit, offset = offset_pages.asked(request)
    rt = runtime(request)
    count, page = await integrations.page(rt.pool, project_id, rt.cipher, limit=limit, offset=offset)
    return json_response(offset_pages.page_body(request, count, limit, offset, [integration_body(i) for i in page]))


@operation("Create an integration", {201: oa.Integration}, body=oa.IntegrationIn)
async def create_integration(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.INTEGRATION_WRITE)
    created = await integrating.create(runtime(request), project_id, await read_json(request))
    return json_response(integration_body(created), status=201)


@operation("Retrieve an integration (never its sensitive_config)", {200: oa.Integration})
async def retrieve_integration(request: web.Request) -> web.Response:
    return json_response(integration_body(await _integration(request, api_keys.INTEGRATION_READ)))


@operation(
    "Update an integration: config and sensitive_config are merged; exports use it from their next run",
    {200: oa.Integration},
    body=oa.IntegrationPatch,
)
async def update_integration(request: web.Request) -> web.Response:
    integration = await _integration(request, api_keys.INTEGRATION_WRITE)
    try:
        updated = await integrating.update(runtime(request), integration, await read_json(request))
    except LookupError:
        raise not_found("Integration not found.") from None
    return json_response(integration_body(updated))


@operation("Delete an integration no live export uses", {204: None, 409: oa.IntegrationInUse})
async def delete_integration(request: web.Request) -> web.Response:
    integration = await _integration(request, api_keys.INTEGRATION_WRITE)
    try:
        await integrating.delete(runtime(request), integration)
    except integrating.InUse as in_use:
        names = ", ".join(f"'{u.name}' ({u.id})" for u in in_use.users[:20])
        detail = f"Batch exports use this integration: {names}. Point them elsewhere or delete them first."
        error = ApiError(409, detail, code="in_use")
        body = {"type": error.type, "code": error.code, "detail": detail, "attr": None,
                "batch_exports": [{"id": str(u.id), "name": u.name} for u in in_use.users]}  # fmt: skip
        return json_response(body, status=409)
    return web.Response(status=204)


ROUTES: list[Route] = [
    ("GET", "/integrations/", list_integrations),
    ("POST", "/integrations/", create_integration),
    ("GET", "/integrations/{id}/", retrieve_integration),
    ("PATCH", "/integrations/{id}/", update_integration),
    ("DELETE", "/integrations/{id}/", delete_integration),
]
