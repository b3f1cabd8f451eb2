"""The gateway's application factory: resources opened in `cleanup_ctx`, routes from one table each."""

from collections.abc import AsyncIterator

from aiohttp import web

from api.errors import error_middleware
from api.keys import CIPHER, POOL, SETTINGS, SOURCE_POOL, TEMPORAL
from api.routes import (
    PROJECT_PREFIXES,
    backfills,
    batch_exports,
    capture,
    destination_tests,
    health,
    logs,
    runs,
    schema,
)
from batch_exports import db, temporal
from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings


async def _resources(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with await db.create_pool(settings.database_url) as pool:
        app[POOL] = pool
        if settings.source_dsn == settings.database_url:
            app[SOURCE_POOL] = pool
            app[TEMPORAL] = await temporal.connect(lazy=True)
            yield
            return
        async with await db.create_pool(settings.source_dsn) as source_pool:
            app[SOURCE_POOL] = source_pool
            app[TEMPORAL] = await temporal.connect(lazy=True)
            yield


def create_app(settings: Settings) -> web.Application:
    if settings.encryption_key is None:
        raise RuntimeError("BATCH_EXPORTS_ENCRYPTION_KEY is not set: the gateway cannot store destination configs")
    app = web.Application(middlewares=[error_middleware], client_max_size=settings.max_body_mb * 2**20)
    app[SETTINGS] = settings
    app[CIPHER] = ConfigCipher(settings.encryption_key.get_secret_value())
    app.cleanup_ctx.append(_resources)
    app.on_startup.append(schema.build_document)
    for method, path, handler in [*health.ROUTES, *schema.ROUTES]:
        app.router.add_route(method, path, handler)
    for method, path, handler in capture.ROUTES:  # PostHog's SDKs post with and without the slash
        app.router.add_route(method, path, handler)
        app.router.add_route(method, path + "/", handler)
    for prefix in PROJECT_PREFIXES:
        for method, path, handler in [
            *destination_tests.ROUTES,
            *batch_exports.ROUTES,
            *runs.ROUTES,
            *backfills.ROUTES,
            *logs.ROUTES,
        ]:
            app.router.add_route(method, prefix + path, handler)
    return app
