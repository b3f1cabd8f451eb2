"""What the application holds, under typed keys: the settings it was made with and the one `Runtime`."""

from aiohttp import web

from batch_exports.runtime import Runtime
from batch_exports.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
