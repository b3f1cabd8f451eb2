"""Route tables, one module per resource. Project routes are relative to a project prefix."""

from collections.abc import Awaitable, Callable

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
Route = tuple[str, str, Handler]

PROJECT_PREFIXES = ("/api/environments/{project_id}", "/api/projects/{project_id}")
