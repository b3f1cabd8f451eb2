"""`/_health`: whether the gateway can reach its database and Temporal.

Anyone may ask, so it answers `ok` or `unavailable` per dependency and nothing more; why one is unavailable
(an address, an error) goes to the gateway's log.
"""

import asyncio
import logging

from aiohttp import web
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest

from api import openapi as oa
from api.openapi import operation
from api.routes import Route
from api.state import runtime

CHECK_TIMEOUT_SECONDS = 3

logger = logging.getLogger(__name__)


@operation("Whether the database and Temporal answer", {200: oa.Health, 503: oa.Health}, auth="none")
async def health(request: web.Request) -> web.Response:
    async def database() -> None:
        await runtime(request).pool.fetchval("SELECT 1")

    async def temporal() -> None:
        await runtime(request).client.workflow_service.get_system_info(GetSystemInfoRequest())

    state = {}
    for name, check in (("database", database), ("temporal", temporal)):
        try:
            await asyncio.wait_for(check(), CHECK_TIMEOUT_SECONDS)
            state[name] = "ok"
        except Exception as error:
            logger.warning("health: the %s is unavailable: %s: %s", name, type(error).__name__, error)
            state[name] = "unavailable"
    healthy = all(value == "ok" for value in state.values())
    return web.json_response({"status": "ok" if healthy else "unavailable", **state}, status=200 if healthy else 503)


ROUTES: list[Route] = [("GET", "/_health", health)]
