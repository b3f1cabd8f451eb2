"""`/` and `/api/docs/`: a front page for people, and an interactive viewer of `/api/schema/`.

The viewer is Swagger UI from the `swagger-ui-py` distribution's own files, served by the gateway: the page
loads nothing from anywhere else (no CDN), so it works on a machine with no internet.
"""

import html
import importlib.util
from pathlib import Path

from aiohttp import web

from api.routes import Route
from api.state import SETTINGS

_spec = importlib.util.find_spec("swagger_ui")  # its files only: importing it would load its web-framework glue
assert _spec is not None and _spec.submodule_search_locations, "swagger-ui-py is a dependency of the gateway"
SWAGGER_UI = Path(next(iter(_spec.submodule_search_locations))) / "static"
ASSETS = ("swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png")

DOCS_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Batch exports API</title>
  <link rel="icon" href="/api/docs/favicon-32x32.png">
  <link rel="stylesheet" href="/api/docs/swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="/api/docs/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({url: "/api/schema/", dom_id: "#swagger-ui", deepLinking: true,
                                 docExpansion: "list", persistAuthorization: true});
  </script>
</body>
</html>
"""


async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")


async def asset(request: web.Request) -> web.StreamResponse:
    name = request.match_info["name"]
    if name not in ASSETS:
        raise web.HTTPNotFound()
    return web.FileResponse(SWAGGER_UI / name, headers={"Cache-Control": "public, max-age=86400"})


async def home(request: web.Request) -> web.Response:
    ui = request.app[SETTINGS].temporal_ui_url
    temporal = (
        f'<a href="{html.escape(ui)}">Temporal UI</a>: the schedules (one per export) and the runs'
        if ui
        else "Temporal UI: not configured here (<code>BATCH_EXPORTS_TEMPORAL_UI_URL</code> names it)"
    )
    page = f"""<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>Batch exports</title></head>
<body>
  <h1>Batch exports</h1>
  <ul>
    <li><a href="/api/docs/">API docs</a>: every operation, to read and try
      (the document: <a href="/api/schema/">/api/schema/</a>)</li>
    <li>{temporal}</li>
    <li><a href="/_health">Health</a>: whether the database and Temporal answer</li>
  </ul>
</body>
</html>
"""
    return web.Response(text=page, content_type="text/html")


ROUTES: list[Route] = [("GET", "/", home), ("GET", "/api/docs/", docs), ("GET", "/api/docs/{name}", asset)]
