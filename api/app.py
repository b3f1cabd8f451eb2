"""The gateway's application factory: the runtime opened in `cleanup_ctx`, routes from one table each."""

import asyncio
from collections.abc import AsyncIterator

from aiohttp import web

from api.checks import CheckRunner
from api.errors import error_middleware
from api.inputs import refuse_nul
from api.key_cache import KeyCache
from api.routes import (
    PROJECT_PREFIXES,
    backfills,
    batch_exports,
    capture,
    destination_tests,
    docs,
    health,
    integrations,
    logs,
    notification_targets,
    runs,
    schema,
)
from api.state import CHECKS, KEY_CACHE, RUNTIME, SETTINGS
from api.telemetry import telemetry_middleware
from batch_exports.runtime import Runtime, cipher_for, open_runtime
from batch_exports.settings import Settings


def create_app(settings: Settings, runtime: Runtime | None = None) -> web.Application:
    """The gateway; it opens a runtime of its own (serving metrics on the gateway's metrics port) unless given
    one (a process that also runs a worker)."""
    cipher_for(settings, "gateway")  # refuse to start without the key, before any request
    app = web.Application(
        middlewares=[telemetry_middleware, error_middleware, refuse_nul],
        client_max_size=settings.max_body_mb * 2**20,
        handler_args={"auto_decompress": False},  # bodies inflate in a thread, bounded (`api.inputs`)
    )
    app[SETTINGS] = settings

    async def resources(app: web.Application) -> AsyncIterator[None]:
        if runtime is not None:
            app[RUNTIME] = runtime
            yield
            return
        async with open_runtime(settings, process="gateway", lazy=True, metrics="api") as opened:
            app[RUNTIME] = opened
            yield

    async def checks(app: web.Application) -> AsyncIterator[None]:
        app[CHECKS] = CheckRunner(settings.max_concurrent_checks, settings.check_timeout_seconds).start()
        yield
        await asyncio.to_thread(app[CHECKS].close)  # it waits (briefly) for the checks' loop to stop

    async def key_cache(app: web.Application) -> AsyncIterator[None]:
        app[KEY_CACHE] = KeyCache(settings.database_url)
        if settings.api_key_cache:  # never started, it never listens, so it keeps nothing
            await app[KEY_CACHE].start()
        yield
        await app[KEY_CACHE].close()

    app.cleanup_ctx.append(resources)
    app.cleanup_ctx.append(checks)
    app.cleanup_ctx.append(key_cache)
    app.on_startup.append(schema.build_document)
    routes = [*docs.ROUTES, *health.ROUTES, *schema.ROUTES, *capture.ROUTES]
    for prefix in PROJECT_PREFIXES:
        routes += [
            (method, prefix + path, handler)
            for method, path, handler in [
                *destination_tests.ROUTES,
                *batch_exports.ROUTES,
                *runs.ROUTES,
                *backfills.ROUTES,
                *logs.ROUTES,
                *integrations.ROUTES,
                *notification_targets.ROUTES,
            ]
        ]
    for method, path, handler in routes:  # every route with and without its trailing slash, as PostHog's `/?`
        app.router.add_route(method, path, handler)
        if path.endswith("/") and path != "/":
            app.router.add_route(method, path.rstrip("/"), handler, name=None)
    return app
