"""Offset pages (`limit`, `offset`; `{count, next, previous, results}`), as PostHog serves exports and
integrations."""

from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from api import openapi as oa
from api.params import query_int

MAX_OFFSET = 10**9
QUERY = (oa.LIMIT, oa.Query("offset", {"type": "integer", "minimum": 0, "maximum": MAX_OFFSET}))
"""The query parameters of an offset page, for `@operation`."""


def asked(request: web.Request) -> tuple[int, int]:
    """The `limit` (100 by default, at most 1000) and `offset` the request asks for."""
    return query_int(request, "limit", 100, minimum=1, maximum=1000), query_int(
        request, "offset", 0, maximum=MAX_OFFSET
    )


def page_body(request: web.Request, count: int, limit: int, offset: int, results: list[Any]) -> dict[str, Any]:
    def link(at: int) -> str:
        return str(request.url.with_query(urlencode({**request.query, "limit": limit, "offset": at})))

    return {
        "count": count,
        "next": link(offset + limit) if offset + limit < count else None,
        "previous": link(max(offset - limit, 0)) if offset > 0 else None,
        "results": results,
    }
