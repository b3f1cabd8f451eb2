"""Cursor pages, as PostHog serves runs and backfills: opaque `cursor` tokens in `next`/`previous` URLs.

A cursor holds the keyset position `(sort value, id)` of the last row served, so the last page costs
what the first does.
"""

import base64
import binascii
import json
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from aiohttp import web

from api.errors import validation_error
from contracts.intervals import in_utc_range

T = TypeVar("T")


def encode(value: datetime, row_id: uuid.UUID, *, backwards: bool = False) -> str:
    raw = json.dumps([value.isoformat(), str(row_id), backwards])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode(cursor: str) -> tuple[datetime, uuid.UUID, bool]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        value, row_id, backwards = json.loads(raw)
        return in_utc_range(datetime.fromisoformat(value)), uuid.UUID(row_id), bool(backwards)
    except (ValueError, TypeError, OverflowError, binascii.Error, UnicodeDecodeError):
        raise validation_error("'cursor' is not a cursor this API gave out.", "cursor", code="invalid_cursor") from None


@dataclass(frozen=True)
class PageRequest:
    """Where the requested page starts: after `position` (before it when `backwards`), or at the top."""

    position: tuple[datetime, uuid.UUID] | None
    backwards: bool

    @classmethod
    def of(cls, request: web.Request) -> "PageRequest":
        cursor = request.query.get("cursor")
        if not cursor:
            return cls(None, False)
        value, row_id, backwards = decode(cursor)
        return cls((value, row_id), backwards)


def ordering_from(request: web.Request, known: Collection[str], default: str = "-created_at") -> str:
    """The `ordering` asked for, or `default` for one not in `known` (ignored, as PostHog ignores it)."""
    asked = request.query.get("ordering", default)
    return asked if asked in known else default


def page_body(
    request: web.Request,
    rows: list[T],
    *,
    size: int,
    asked: PageRequest,
    key: Callable[[T], tuple[datetime, uuid.UUID]],
    render: Callable[[T], dict[str, Any]],
) -> dict[str, Any]:
    """`{next, previous, results}` from up to `size + 1` rows fetched in the page's direction."""
    backwards, had_cursor = asked.backwards, asked.position is not None
    more = len(rows) > size
    rows = rows[:size]
    if backwards:
        rows.reverse()
    has_next = more if not backwards else had_cursor
    has_previous = had_cursor if not backwards else more

    def link(row: T, back: bool) -> str:
        return str(request.url.update_query(cursor=encode(*key(row), backwards=back)))

    return {
        "next": link(rows[-1], False) if rows and has_next else None,
        "previous": link(rows[0], True) if rows and has_previous else None,
        "results": [render(row) for row in rows],
    }
