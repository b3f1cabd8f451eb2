"""Reading path and query parameters into typed values, with a 4xx that names the parameter."""

import uuid
from datetime import UTC, datetime

from aiohttp import web

from api.errors import not_found, validation_error


def path_uuid(request: web.Request, name: str) -> uuid.UUID:
    try:
        return uuid.UUID(request.match_info[name])
    except ValueError:
        raise not_found() from None


def query_int(request: web.Request, name: str, default: int, *, minimum: int = 0, maximum: int | None = None) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise validation_error(f"'{name}' must be an integer.", name) from None
    if value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise validation_error(f"'{name}' must be {bound}.", name)
    return value


def query_datetime(request: web.Request, name: str) -> datetime | None:
    """An ISO 8601 date-time parameter (UTC when it names no offset)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise validation_error(f"'{name}' must be an ISO 8601 date-time.", name) from None
    return value if value.tzinfo else value.replace(tzinfo=UTC)
