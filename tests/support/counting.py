"""A PostgreSQL connection that counts: every statement it sends is appended to a list its pool shares; and a
gateway of its own on the stack's database whose pool (one such connection) records its statements."""

import contextlib
import dataclasses
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
import asyncpg
from aiohttp import web

from api.app import create_app
from api.key_cache import KeyCache
from api.state import KEY_CACHE
from batch_exports.store import db
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.stack import Project


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that appends every statement it sends to `sent` (shared by the pool's connections)."""

    sent: ClassVar[list[str]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_query_logger(lambda record: self.sent.append(record.query))


@dataclasses.dataclass
class CountedGateway:
    base: str
    """The project's API prefix on this gateway."""
    sent: list[str]
    """Every statement its pool sent (its key cache listens on a connection of its own, not counted)."""
    app: web.Application

    @property
    def key_cache(self) -> KeyCache:
        return self.app[KEY_CACHE]

    def key_lookups(self) -> int:
        return sum("personal_api_keys" in statement for statement in self.sent)

    async def status_of(self, key: str, path: str = "batch_exports/") -> int:
        """The status of a GET of the project's `path` with `key`."""
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession(headers=headers) as http, http.get(self.base + path) as response:
            return response.status


@contextlib.asynccontextmanager
async def counted_gateway(project: Project, **settings: Any) -> AsyncIterator[CountedGateway]:
    """A gateway (with the stack's settings, changed by `settings`) whose statements are counted."""
    stack = project.stack
    dsn = stack.settings.database_url
    pool = await db.create_pool(dsn, min_size=1, max_size=1, connection_class=CountingConnection)
    rt = dataclasses.replace(stack.runtime, pool=pool)
    app = create_app(stack.settings.model_copy(update=settings), rt)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, LOOPBACK, port).start()
    sent: list[str] = []
    CountingConnection.sent = sent
    try:
        yield CountedGateway(f"http://{LOOPBACK}:{port}/api/environments/{project.id}/", sent, app)
    finally:
        await runner.cleanup()
        await pool.close()
