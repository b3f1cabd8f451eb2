"""Reconciliation: make the books agree with what Temporal knows.

- Run and backfill rows left open by executions that closed without saying so (terminated, timed
  out, worker lost) get the close status Temporal reports.
- A schedule paused or unpaused outside the API (Temporal UI, `temporal schedule toggle`) is
  reflected in its export's `paused`; a missing schedule of a live export is created again.
"""

import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

import asyncpg
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from batch_exports import exports, logs, runs
from batch_exports.crypto import ConfigCipher
from batch_exports.export_lifecycle import sync_schedule
from batch_exports.runs import Run, RunStatus
from batch_exports.settings import Settings

logger = logging.getLogger(__name__)

CLOSE_STATUSES = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
}
SETTLING = timedelta(seconds=1)
"""Rows younger than this are left alone: their execution may be about to record itself."""


@dataclass
class Reconciled:
    runs: int = 0
    backfills: int = 0
    paused: int = 0
    unpaused: int = 0
    recreated: int = 0


async def _close_status(client: Client, workflow_id: str, run_id: str | None) -> RunStatus | None:
    """How the execution closed, or None while it runs."""
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return RunStatus.FAILED  # gone from Temporal (retention) without a word: it did not complete
    if described.status is None or described.status == WorkflowExecutionStatus.RUNNING:
        return None
    return CLOSE_STATUSES.get(described.status, RunStatus.FAILED)


async def reconcile_run(pool: asyncpg.Pool, client: Client, run: Run) -> RunStatus | None:
    """Record the close status of an open run whose execution has closed; returns it, or None."""
    status = await _close_status(client, run.workflow_id, run.workflow_run_id)
    if status is None:
        return None
    message = f"The execution ended as {status.value} without recording it (recorded by reconciliation)"
    if await runs.finish(pool, run.id, status=status, latest_error=message, only_if_open=True):
        team_id = await pool.fetchval("SELECT team_id FROM batch_exports WHERE id = $1", run.batch_export_id)
        await logs.write(
            pool,
            team_id=team_id,
            batch_export_id=run.batch_export_id,
            run_id=run.id,
            workflow_run_id=run.workflow_run_id,
            level=logs.Level.WARNING,
            message=message,
        )
    return status


async def reconcile(pool: asyncpg.Pool, client: Client, settings: Settings, cipher: ConfigCipher) -> Reconciled:
    done = Reconciled()
    rows = await pool.fetch(
        "SELECT * FROM batch_export_runs WHERE status IN ('Starting', 'Running') "
        "AND last_updated_at < now() - $1::interval",
        SETTLING,
    )
    for row in rows:
        with _each("run", row["id"]):
            if await reconcile_run(pool, client, Run(**dict(row))):
                done.runs += 1
    backfill_rows = await pool.fetch(
        "SELECT id, workflow_id FROM batch_export_backfills WHERE status IN ('Starting', 'Running') "
        "AND workflow_id IS NOT NULL AND last_updated_at < now() - $1::interval",
        SETTLING,
    )
    for row in backfill_rows:
        with _each("backfill", row["id"]):
            done.backfills += await _reconcile_backfill(pool, client, row["id"], row["workflow_id"])
    for export_id in await pool.fetch("SELECT id FROM batch_exports WHERE NOT deleted"):
        with _each("schedule of export", export_id["id"]):
            await _reconcile_schedule(pool, client, settings, cipher, export_id["id"], done)
    return done


@contextlib.contextmanager
def _each(what: str, item: uuid.UUID) -> Iterator[None]:
    """One item's trouble is logged and skipped; the others are still reconciled."""
    try:
        yield
    except (RPCError, ValueError) as error:
        logger.warning("could not reconcile %s %s: %s", what, item, error)


async def _reconcile_backfill(pool: asyncpg.Pool, client: Client, backfill_id: uuid.UUID, workflow_id: str) -> bool:
    status = await _close_status(client, workflow_id, None)
    if status is None:
        return False
    closed = await pool.execute(
        "UPDATE batch_export_backfills SET status = $2, finished_at = now(), last_updated_at = now() "
        "WHERE id = $1 AND status IN ('Starting', 'Running')",
        backfill_id,
        status.value,
    )
    return closed.endswith(" 1")


async def _reconcile_schedule(
    pool: asyncpg.Pool, client: Client, settings: Settings, cipher: ConfigCipher, export_id: uuid.UUID, done: Reconciled
) -> None:
    export = await exports.get(pool, export_id, cipher)
    if export is None:
        return
    try:
        paused = (await client.get_schedule_handle(str(export_id)).describe()).schedule.state.paused
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        async with pool.acquire() as conn, conn.transaction():
            # A delete in flight holds this row: wait for it, and recreate nothing for a deleted export.
            live = await conn.fetchval("SELECT NOT deleted FROM batch_exports WHERE id = $1 FOR UPDATE", export_id)
            if not live:
                return
            await sync_schedule(client, export, settings)
        done.recreated += 1
        await logs.write(
            pool,
            team_id=export.team_id,
            batch_export_id=export_id,
            level=logs.Level.WARNING,
            message="The export's schedule was missing from Temporal and has been created again",
        )
        return
    if paused != export.paused:
        async with pool.acquire() as conn:
            await exports.set_paused(conn, export_id, paused)
        if paused:
            done.paused += 1
        else:
            done.unpaused += 1
        await logs.write(
            pool,
            team_id=export.team_id,
            batch_export_id=export_id,
            level=logs.Level.INFO,
            message=f"The export's schedule was {'paused' if paused else 'unpaused'} outside the API (Temporal UI "
            "or CLI); the export now shows it",
        )
