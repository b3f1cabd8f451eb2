"""The worker: registers the workflows and activities on the service's task queue, and runs them.

Run it with `python worker.py` against the Temporal cluster and PostgreSQL the environment names
(`TEMPORAL_ADDRESS`, `BATCH_EXPORTS_DATABASE_URL`, ...; see the README).
"""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
from temporalio.client import Client
from temporalio.worker import Worker

from activities.backfill_bookkeeping import BackfillBookkeeping
from activities.bookkeeping import Bookkeeping
from activities.export import Exporter
from activities.reconcile import Reconciler, ensure_reconcile_schedule
from activities.sources.reading import SourceDatabase
from batch_exports import db, temporal
from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings, get_settings
from workflows.backfill import BackfillWorkflow
from workflows.reconcile import ReconcileWorkflow
from workflows.run import RunBatchExportWorkflow


def build_worker(client: Client, settings: Settings, pool: asyncpg.Pool, source_pool: asyncpg.Pool) -> Worker:
    if settings.encryption_key is None:
        raise RuntimeError("BATCH_EXPORTS_ENCRYPTION_KEY is not set: the worker cannot read destination configs")
    cipher = ConfigCipher(settings.encryption_key.get_secret_value())
    bookkeeping = Bookkeeping(pool, client, settings)
    source = SourceDatabase(source_pool, settings.source_dsn)
    backfills = BackfillBookkeeping(pool, source, client, cipher)
    exporter = Exporter(pool, source, cipher, settings)
    reconciler = Reconciler(pool, client, settings, cipher)
    return Worker(
        client,
        task_queue=settings.task_queue,
        workflows=[RunBatchExportWorkflow, BackfillWorkflow, ReconcileWorkflow],
        # Heartbeats reach the server at least every 2 s, so a cancel reaches an export within seconds.
        max_heartbeat_throttle_interval=timedelta(seconds=2),
        activities=[
            bookkeeping.start_run,
            bookkeeping.finish_run,
            exporter.export_interval,
            backfills.start_backfill,
            backfills.finish_backfill,
            backfills.wait_for_workflow,
            reconciler.reconcile,
        ],
    )


@contextlib.asynccontextmanager
async def pools(settings: Settings) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Pool]]:
    """The metadata pool and the source pool (the same one when both live in one database)."""
    async with contextlib.AsyncExitStack() as stack:
        pool = await stack.enter_async_context(await db.create_pool(settings.database_url))
        source_pool = pool
        if settings.source_dsn != settings.database_url:
            source_pool = await stack.enter_async_context(await db.create_pool(settings.source_dsn))
        yield pool, source_pool


async def main() -> None:
    settings = get_settings()
    client = await temporal.connect()
    await ensure_reconcile_schedule(client, settings)
    async with pools(settings) as (pool, source_pool):
        await build_worker(client, settings, pool, source_pool).run()


if __name__ == "__main__":
    asyncio.run(main())
