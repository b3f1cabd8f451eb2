"""The composition root: one small holder of what every process is built from.

The worker, the gateway and `make dev` each open one `Runtime` (the metadata pool, the event source, the
Temporal client, the settings and the config cipher) and hand it to what they build; nothing else opens
a pool or a client of its own.
"""

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from urllib.parse import urlparse

import asyncpg
from temporalio.client import Client

from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings
from batch_exports.store import db
from batch_exports.temporal import client as temporal_client
from connectors.destinations import Context
from connectors.destinations.base import ProtectedDatabase
from connectors.sources.reading import SourceDatabase


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    """The service's metadata database."""
    source: SourceDatabase
    """The event store runs read (the same database by default)."""
    client: Client
    cipher: ConfigCipher

    @property
    def destinations(self) -> Context:
        """What destinations are told about where they run (`for_project` narrows it to one project's)."""
        return Context(
            files_root=self.settings.exports_root,
            allow_private=self.settings.allow_private_destinations,
            protected_databases=own_databases(self.settings),
            iceberg_catalog_url=self.settings.iceberg_catalog_url or self.settings.database_url,
        )


def own_databases(settings: Settings) -> tuple[ProtectedDatabase, ...]:
    """The service's own databases (metadata, event source), which no destination may point at."""
    found = []
    for dsn in dict.fromkeys((settings.database_url, settings.source_dsn)):
        url = urlparse(dsn)
        with contextlib.suppress(ValueError):
            found.append(ProtectedDatabase(url.hostname or "", url.port or 5432, url.path.lstrip("/")))
    return tuple(found)


def cipher_for(settings: Settings, process: str) -> ConfigCipher:
    if settings.encryption_key is None:
        raise RuntimeError(f"BATCH_EXPORTS_ENCRYPTION_KEY is not set: the {process} cannot read destination configs")
    return ConfigCipher(settings.encryption_key.get_secret_value())


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings, *, process: str, client: Client | None = None, lazy: bool = False
) -> AsyncIterator[Runtime]:
    """Open the pools (one when metadata and events share a database) and, unless given, the Temporal client.

    `lazy` connects the client on first use, so a gateway can start (and report) while Temporal is down.
    """
    cipher = cipher_for(settings, process)
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(await db.create_pool(settings.database_url))
        source_pool = pool
        if settings.source_dsn != settings.database_url:
            source_pool = await stack.enter_async_context(await db.create_pool(settings.source_dsn))
        if client is None:
            client = await temporal_client.connect(lazy=lazy, process=process)
        yield Runtime(
            settings,
            pool,
            SourceDatabase(source_pool, settings.source_dsn, settings.source_statement_timeout_seconds),
            client,
            cipher,
        )
