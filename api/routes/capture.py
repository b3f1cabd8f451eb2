"""PostHog's capture endpoints (`/batch/`, `/capture/`, `/e/`, `/i/v0/e/`): events into the source.

A payload is authenticated by its project token and written whole or not at all. A token the store knew is
trusted for `TOKEN_SECONDS` without asking again (capture's hot path; a project does not change tokens often).
"""

import logging
import time
from typing import Any

from aiohttp import web

from api import inputs
from api import openapi as oa
from api.errors import ApiError
from api.openapi import operation
from api.routes import Route
from api.state import runtime
from batch_exports.runtime import Runtime
from batch_exports.services import capture as ingestion
from batch_exports.store import event_store, projects

log = logging.getLogger(__name__)
INLINE_EVENTS = 2000
TOKEN_SECONDS = 10.0
_known_tokens: dict[str, tuple[float, int]] = {}
"""token -> (when it was looked up, its project)."""


async def _project_of(pool: Any, token: str) -> int | None:
    seen = _known_tokens.get(token)
    if seen is not None and time.monotonic() - seen[0] < TOKEN_SECONDS:
        return seen[1]
    team_id = await projects.for_token(pool, token)
    if team_id is not None:
        if len(_known_tokens) >= 10_000:
            _known_tokens.clear()
        _known_tokens[token] = (time.monotonic(), team_id)
    return team_id


def _large(body: Any) -> bool:
    return (
        isinstance(body, list | dict)
        and len(body if isinstance(body, list) else body.get("batch") or ()) > INLINE_EVENTS
    )


@operation(
    "Capture events (PostHog's capture format; the project token authenticates)",
    {200: oa.Captured, 400: oa.Error, 401: oa.Error, 404: oa.Error, 413: oa.Error, 503: oa.Error},
    body={"type": "object"},
    auth="token",
)
async def capture(request: web.Request) -> web.Response:
    rt = runtime(request)
    if rt.settings.source == "clickhouse":
        detail = ("This service reads PostHog's ClickHouse (BATCH_EXPORTS_SOURCE=clickhouse): PostHog's own "
                  "ingestion captures events; send them to PostHog.")  # fmt: skip
        return ApiError(404, detail, code="capture_not_here").response()
    try:
        events = await _capture(request, rt)
    except (ApiError, web.HTTPClientError):  # the client's to fix: bad payload, wrong token, too large
        rt.metrics.captured("rejected")
        raise
    except event_store.Contended as error:  # nothing written: the same payload sent again is stored whole
        rt.metrics.captured("failed")
        log.warning("capture: a payload gave up after %s; answered 503", error)
        detail = "Other requests were changing the same persons; nothing was stored. Send the payload again."
        response = ApiError(503, detail, type="server_error", code="capture_contended").response()
        response.headers["Retry-After"] = "1"
        return response
    except Exception:
        rt.metrics.captured("failed")
        raise
    rt.metrics.captured("accepted", events)
    return web.json_response({"status": 1})


async def _capture(request: web.Request, rt: Runtime) -> int:
    """Write the request's events; returns how many."""
    try:  # gzip by `Content-Encoding` or by the body itself (PostHog's `?compression=gzip-js`), bounded
        body = await inputs.read_json(request, rt.settings.max_body_mb * 2**20)
    except inputs.BodyRejected as error:
        code = "invalid_payload" if error.status == 400 else error.code
        raise ApiError(error.status, error.detail, code=code) from None
    try:  # a large batch is checked in a thread: the event loop goes on serving
        payload = await inputs.off_the_loop(ingestion.parse, body) if _large(body) else ingestion.parse(body)
    except ingestion.CaptureError as error:
        raise ApiError(400, f"Invalid payload: {error}.", code="invalid_payload", attr=error.attr) from None
    team_id = await _project_of(rt.pool, payload.token) if payload.token else None
    if team_id is None:
        raise ApiError(
            401,
            "The project API token is missing or not valid: send it as 'api_key'.",
            type="authentication_error",
            code="invalid_api_key",
        )
    for warning in payload.warnings:
        log.warning("capture: team %s: %s", team_id, warning)
    await event_store.write(rt.pool, team_id, payload.events)
    return len(payload.events)


ROUTES: list[Route] = [("POST", path, capture) for path in ("/batch/", "/capture/", "/e/", "/i/v0/e/")]
