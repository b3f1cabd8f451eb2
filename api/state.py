"""What the application holds, under typed keys: the settings it was made with and the one `Runtime`."""

from aiohttp import web

from api.checks import CheckRunner
from api.key_cache import KeyCache
from batch_exports.runtime import Runtime
from batch_exports.settings import Settings

SETTINGS = web.AppKey("settings", Settings)
RUNTIME = web.AppKey("runtime", Runtime)
CHECKS = web.AppKey("checks", CheckRunner)
"""Where destination checks run (`api.checks`): never on the threads that serve requests."""
KEY_CACHE = web.AppKey("key_cache", KeyCache)
"""The API keys found valid, until PostgreSQL says they changed (`api.key_cache`)."""


def runtime(request: web.Request) -> Runtime:
    return request.app[RUNTIME]
