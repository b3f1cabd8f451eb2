"""Errors as PostHog's API renders them: `{type, code, detail, attr}`, never a bare 500 page."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import ValidationError

from api import inputs
from api.state import SETTINGS
from batch_exports.exports.validation import InvalidField
from batch_exports.services.backfills import TooManyBackfills
from batch_exports.services.lifecycle import ScheduleRaced, TooManyExports
from batch_exports.store import db
from batch_exports.store.exports import ExportNotFound
from batch_exports.temporal.client import TemporalUnavailable

logger = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(
        self, status: int, detail: str, *, type: str = "invalid_request", code: str = "invalid", attr: str | None = None
    ) -> None:
        super().__init__(detail)
        self.status, self.detail, self.type, self.code, self.attr = status, detail, type, code, attr

    def response(self) -> web.Response:
        body = {"type": self.type, "code": self.code, "detail": self.detail, "attr": self.attr}
        return web.json_response(body, status=self.status)


def not_found(what: str = "Not found.") -> ApiError:
    return ApiError(404, what, code="not_found")


def validation_error(detail: str, attr: str | None = None, code: str = "invalid_input") -> ApiError:
    return ApiError(400, detail, type="validation_error", code=code, attr=attr)


def from_pydantic(error: ValidationError) -> ApiError:
    """The first problem of a pydantic error, with the field path as PostHog writes it (`a__b`)."""
    first = error.errors(include_url=False)[0]
    loc = [str(part) for part in first["loc"]]
    attr = "__".join(loc) or None
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "missing":
        message = "This field is required."
    elif first["type"] == "extra_forbidden":
        message = f"Unknown field '{loc[-1]}'."
    return validation_error(message, attr, code="required" if first["type"] == "missing" else "invalid_input")


async def read_json(request: web.Request) -> Any:
    """The body as strict JSON, within the body limit (see `api.inputs`)."""
    try:
        return await inputs.read_json(request, request.app[SETTINGS].max_body_mb * 2**20)
    except inputs.BodyRejected as error:
        raise ApiError(error.status, error.detail, code=error.code) from None


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    try:
        return await handler(request)
    except ApiError as error:
        return error.response()
    except ValidationError as error:
        return from_pydantic(error).response()
    except InvalidField as error:
        return validation_error(str(error), error.attr).response()
    except TemporalUnavailable as error:
        return ApiError(503, str(error), type="server_error", code="temporal_unavailable").response()
    except db.UNAVAILABLE as error:
        logger.warning("database unavailable on %s %s: %s", request.method, request.path, error)
        detail = "The database is unavailable; try again in a moment."
        return ApiError(503, detail, type="server_error", code="database_unavailable").response()
    except ScheduleRaced as error:
        return ApiError(409, str(error), code="schedule_changed").response()
    except ExportNotFound:
        return not_found("Batch export not found.").response()
    except TooManyExports as error:
        return validation_error(str(error), code="max_exports_per_project").response()
    except TooManyBackfills as error:
        return ApiError(429, f"Too many backfills: {error}.", code="throttled").response()
    except web.HTTPRequestEntityTooLarge as error:
        return ApiError(413, f"The body is too large: {error.text}", code="too_large").response()
    except web.HTTPNotFound:
        return not_found().response()
    except web.HTTPMethodNotAllowed as error:
        return ApiError(405, f"Method {error.method} is not allowed here.", code="method_not_allowed").response()
    except web.HTTPException:
        raise
    except Exception:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return ApiError(
            500, "Something went wrong on our side; it has been logged.", type="server_error", code="error"
        ).response()
