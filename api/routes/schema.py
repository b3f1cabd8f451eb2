"""`/api/schema/`: the OpenAPI 3 document of every route."""

from aiohttp import web

from api.openapi import document, operation
from api.routes import Route

SCHEMA = web.AppKey("openapi_document", dict)


@operation("This OpenAPI document", {200: None}, auth="none")
async def schema(request: web.Request) -> web.Response:
    return web.json_response(request.app[SCHEMA])


async def build_document(app: web.Application) -> None:
    """Made once, when the router is complete."""
    app[SCHEMA] = document(app)


ROUTES: list[Route] = [("GET", "/api/schema/", schema)]
