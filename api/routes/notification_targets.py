"""`notification_targets/`: where a project is told that an export failed for good, was paused, or recovered.

A target is a webhook (`{"kind": "webhook", "url", "format": "json"|"slack"}`; a hooks.slack.com URL is Slack's
by default) or an e-mail address (`{"kind": "email", "address"}`, sent over `BATCH_EXPORTS_SMTP_URL`). Its
address is encrypted and shown only as `display` (a webhook without its path: a Slack URL is a credential).
"""

from aiohttp import web

from api import openapi as oa
from api.auth import authorize
from api.errors import not_found, read_json
from api.openapi import operation
from api.params import path_uuid
from api.responses import json_response
from api.routes import Route
from api.state import runtime
from batch_exports.exports.validation import InvalidField
from batch_exports.services import notifications as notifying
from batch_exports.store import api_keys, notifications
from batch_exports.store.notifications import Target

MAX_TARGETS = 20


def target_body(target: Target) -> dict[str, object]:
    fields = {name: getattr(target, name) for name in oa.NotificationTarget.model_fields}
    return oa.NotificationTarget.model_validate(fields).model_dump(mode="json")


@operation("List the project's notification targets", {200: oa.NotificationTargets})
async def list_targets(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.READ)
    rt = runtime(request)
    return json_response(
        {"results": [target_body(t) for t in await notifications.targets(rt.pool, project_id, rt.cipher)]}
    )


@operation("Add a notification target", {201: oa.NotificationTarget}, body=oa.NotificationTargetIn)
async def create_target(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.WRITE)
    rt = runtime(request)
    kind, display, encrypted = await notifying.new_target(rt.settings, rt.cipher, await read_json(request))
    if await notifications.count_targets(rt.pool, project_id) >= MAX_TARGETS:
        raise InvalidField("kind", f"A project has at most {MAX_TARGETS} notification targets.")
    target_id = await notifications.add_target(rt.pool, project_id, kind, display, encrypted)
    created = next(t for t in await notifications.targets(rt.pool, project_id, rt.cipher) if t.id == target_id)
    return json_response(target_body(created), status=201)


@operation("Remove a notification target", {204: None})
async def delete_target(request: web.Request) -> web.Response:
    project_id = await authorize(request, api_keys.WRITE)
    if not await notifications.remove_target(runtime(request).pool, path_uuid(request, "id"), project_id):
        raise not_found("Notification target not found.")
    return web.Response(status=204)


ROUTES: list[Route] = [
    ("GET", "/notification_targets/", list_targets),
    ("POST", "/notification_targets/", create_target),
    ("DELETE", "/notification_targets/{id}/", delete_target),
]
