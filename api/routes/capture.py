"""PostHog's capture endpoints (`/batch/`, `/capture/`, `/e/`, `/i/v0/e/`): events into the source.

A payload is authenticated by its project token and written whole or not at all.
"""

import json
import zlib

from aiohttp import web

from api import openapi as oa
from api.errors import ApiError
from api.openapi import operation
from api.routes import Route
from api.state import runtime
from batch_exports.services import capture as ingestion
from batch_exports.store import event_store, projects

_GZIP_MAGIC = b"\x1f\x8b"


def _decompress(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise ApiError(400, f"The body is not valid gzip: {error}", code="invalid_payload") from None
    if len(data) > limit:
        raise ApiError(413, f"The decompressed body exceeds {limit // 2**20} MiB.", code="too_large")
    return data


@operation(
    "Capture events (PostHog's capture format; the project token authenticates)",
    {200: oa.Captured, 400: oa.Error, 401: oa.Error, 413: oa.Error},
    body={"type": "object"},
    auth="token",
)
async def capture(request: web.Request) -> web.Response:
    rt = runtime(request)
    limit = rt.settings.max_body_mb * 2**20
    body = await request.read()
    # aiohttp already inflates `Content-Encoding: gzip`; PostHog's SDKs may instead send gzip with
    # `?compression=gzip-js`, so the body itself says whether it is compressed.
    if body.startswith(_GZIP_MAGIC):
        body = _decompress(body, limit)
    try:
        payload = ingestion.parse(json.loads(body))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ApiError(400, f"The body is not valid JSON: {error}", code="invalid_payload") from None
    except ingestion.CaptureError as error:
        raise ApiError(400, f"Invalid payload: {error}.", code="invalid_payload") from None
    team_id = await projects.for_token(rt.pool, payload.token) if payload.token else None
    if team_id is None:
        raise ApiError(
            401,
            "The project API token is missing or not valid: send it as 'api_key'.",
            type="authentication_error",
            code="invalid_api_key",
        )
    await event_store.write(rt.pool, team_id, payload.events)
    return web.json_response({"status": 1})


ROUTES: list[Route] = [("POST", path, capture) for path in ("/batch/", "/capture/", "/e/", "/i/v0/e/")]
