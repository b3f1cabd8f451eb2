"""Changes to a batch export that keep PostgreSQL and its Temporal Schedule in step.

Each change is one database transaction around the Temporal call it needs: when Temporal refuses or
cannot be reached, the transaction rolls back and `TemporalUnavailable` says so, leaving both as
they were.
"""

import contextlib
import uuid
from datetime import datetime

import asyncpg
from temporalio.client import Client, ScheduleUpdate, ScheduleUpdateInput
from temporalio.service import RPCError

from batch_exports import backfills, exports, logs, runs, schedules
from batch_exports.crypto import ConfigCipher
from batch_exports.exports import BatchExport
from batch_exports.models import BatchExportIn, InvalidField
from batch_exports.settings import Settings
from batch_exports.temporal import calling_temporal, cancel_workflow, is_not_found
from workflows.intervals import previous_boundary


async def sync_schedule(client: Client, export: BatchExport, settings: Settings) -> None:
    """Make the export's schedule say what the export says: replace it, or create it when missing."""
    schedule = schedules.schedule_for(export, settings)

    def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=schedule)

    try:
        await client.get_schedule_handle(str(export.id)).update(replace)
    except RPCError as error:
        if not is_not_found(error):
            raise
        await client.create_schedule(str(export.id), schedule)


async def create(
    pool: asyncpg.Pool, client: Client, settings: Settings, cipher: ConfigCipher, team_id: int, body: BatchExportIn
) -> BatchExport:
    async with pool.acquire() as conn, conn.transaction():
        export = await exports.insert(conn, team_id, body, cipher)
        async with calling_temporal("create the export's schedule"):
            await client.create_schedule(str(export.id), schedules.schedule_for(export, settings))
    return export


async def update(
    pool: asyncpg.Pool,
    client: Client,
    settings: Settings,
    cipher: ConfigCipher,
    export: BatchExport,
    body: BatchExportIn,
) -> BatchExport:
    async with pool.acquire() as conn, conn.transaction():
        updated = await exports.update(conn, export, body, cipher)
        async with calling_temporal("update the export's schedule"):
            await sync_schedule(client, updated, settings)
    return updated


async def set_paused(
    pool: asyncpg.Pool, client: Client, settings: Settings, cipher: ConfigCipher, export: BatchExport, paused: bool
) -> BatchExport:
    async with pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, paused)
        changed = await exports.get(conn, export.id, cipher)
        if changed is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("pause the export's schedule" if paused else "unpause the export's schedule"):
            await sync_schedule(client, changed, settings)
    return changed


async def unpause(
    pool: asyncpg.Pool,
    client: Client,
    settings: Settings,
    cipher: ConfigCipher,
    export: BatchExport,
    *,
    backfill: bool,
    now: datetime,
) -> backfills.Backfill | None:
    """Unpause; with `backfill`, also run every interval the pause made the schedule skip.

    The backfill starts at the boundary before the pause, so the interval that was under way when
    the export was paused is exported too.
    """
    gap = None
    if backfill and export.paused and export.last_paused_at:
        start = previous_boundary(export.interval_spec, export.last_paused_at)
        with contextlib.suppress(InvalidField):  # paused for less than an interval: nothing was skipped
            gap = backfills.bounds(export, start.isoformat(), now.isoformat(), now)
    async with pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, False)
        unpaused = await exports.get(conn, export.id, cipher)
        if unpaused is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("unpause the export's schedule"):
            await sync_schedule(client, unpaused, settings)
        if gap is None:
            return None
        try:
            return await backfills.start(conn, client, settings, unpaused, *gap)
        except BaseException:
            with contextlib.suppress(RPCError):  # undo the unpause with the rest of the request
                await client.get_schedule_handle(str(export.id)).pause(note="unpause failed: backfill not started")
            raise


async def delete(pool: asyncpg.Pool, client: Client, export: BatchExport) -> None:
    """Soft-delete the export, delete its schedule and cancel its running runs and backfills."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("UPDATE batch_exports SET deleted = true, last_updated_at = now() WHERE id = $1", export.id)
        async with calling_temporal("delete the export's schedule"):
            try:
                await client.get_schedule_handle(str(export.id)).delete()
            except RPCError as error:
                if not is_not_found(error):
                    raise
            await cancel_running(conn, client, export.id)


async def cancel_running(conn: asyncpg.Connection | asyncpg.Pool, client: Client, export_id: uuid.UUID) -> None:
    """Ask every running backfill and run of the export to stop (each records `Cancelled` itself)."""
    # One already closed is skipped: reconciliation records how it ended.
    for backfill in await backfills.open_for_export(conn, export_id):
        await backfills.cancel(client, backfill)
    for run in await runs.open_for_export(conn, export_id):
        await cancel_workflow(client, run.workflow_id, run.workflow_run_id)


async def pause_if_failing(
    pool: asyncpg.Pool, client: Client, settings: Settings, export_id: uuid.UUID, threshold: int
) -> bool:
    """Pause an export whose `threshold` latest runs all `Failed`, and cancel its backfills."""
    if threshold <= 0:
        return False
    # Only how runs ended for good counts: a FailedRetryable execution is followed by another.
    latest = await pool.fetch(
        """
        SELECT status FROM batch_export_runs
        WHERE batch_export_id = $1 AND status IN ('Completed', 'Failed', 'Cancelled', 'Terminated', 'TimedOut')
        ORDER BY created_at DESC LIMIT $2
        """,
        export_id,
        threshold,
    )
    if len(latest) < threshold or any(row["status"] != runs.RunStatus.FAILED for row in latest):
        return False
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow("SELECT team_id, paused FROM batch_exports WHERE id = $1 FOR UPDATE", export_id)
        if row is None or row["paused"]:
            return False
        await exports.set_paused(conn, export_id, True)
        async with calling_temporal("pause the export's schedule"):
            await client.get_schedule_handle(str(export_id)).pause(
                note=f"auto-paused: the latest {threshold} runs failed"
            )
        for backfill in await backfills.open_for_export(conn, export_id):
            await backfills.cancel(client, backfill)
        await logs.write(
            conn,
            team_id=row["team_id"],
            batch_export_id=export_id,
            level=logs.Level.WARNING,
            message=f"Paused automatically: the latest {threshold} runs failed. Fix the cause shown in their "
            "errors, then unpause the export (with backfill to export what was missed).",
        )
    return True
