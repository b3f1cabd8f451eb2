"""Reading path and query parameters into typed values, with a 4xx that names the parameter."""

import re
import uuid
from datetime import UTC, datetime, timedelta

from aiohttp import web

from api.errors import not_found, validation_error
from contracts.intervals import in_utc_range


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


_RELATIVE = re.compile(r"^-?(?P<number>[0-9]{1,6})?(?P<unit>[hdwmqysM])(?P<snap>Start|End)?$")
_UNITS = {
    "s": timedelta(seconds=1), "M": timedelta(minutes=1), "h": timedelta(hours=1), "d": timedelta(days=1),
    "w": timedelta(weeks=1), "m": timedelta(days=30), "q": timedelta(weeks=13), "y": timedelta(days=365),
}  # fmt: skip


def query_datetime(request: web.Request, name: str, *, relative: bool = False) -> datetime | None:
    """An ISO 8601 date-time (or date) parameter, UTC when it names no offset; with `relative`, also PostHog's
    forms counted back from now: `-7d`, `-1h`, `-30M` (minutes), `-2w`, `-1m` (30 days), `-1dStart`...
    A time outside the years 1 to 9999 (in UTC) is a 400 naming the parameter."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        return _query_datetime(raw, name, relative)
    except OverflowError:
        raise validation_error(f"'{name}' must lie between the years 1 and 9999.", name) from None


def _query_datetime(raw: str, name: str, relative: bool) -> datetime:
    if relative and (match := _RELATIVE.match(raw.strip())):
        value = datetime.now(UTC) - int(match["number"] or 1) * _UNITS[match["unit"]]
        if match["snap"] == "Start":
            value = value.replace(hour=0, minute=0, second=0, microsecond=0)
        elif match["snap"] == "End":
            value = value.replace(hour=23, minute=59, second=59, microsecond=999999)
        return value
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        forms = ", or a relative time such as -7d or -1h" if relative else ""
        raise validation_error(f"'{name}' must be an ISO 8601 date-time{forms}.", name) from None
    return in_utc_range(value)
