"""Changes to a batch export that keep PostgreSQL and its Temporal Schedule in step.

Each change is one database transaction around the Temporal call it needs: when Temporal refuses or
cannot be reached, the transaction rolls back and `TemporalUnavailable` says so, leaving both as
they were.
"""

import contextlib
import uuid
from datetime import UTC, datetime

import asyncpg
from temporalio.client import Client
from temporalio.service import RPCError

from batch_exports.models import BatchExportIn, InvalidField
from batch_exports.runtime import Runtime
from batch_exports.services import backfills as backfilling
from batch_exports.store import backfills, exports, logs, runs
from batch_exports.store.backfills import Backfill
from batch_exports.store.exports import BatchExport
from batch_exports.temporal import schedules
from batch_exports.temporal.client import calling_temporal, cancel_workflow
from contracts.intervals import IntervalSpec, latest_boundary, previous_boundary
from contracts.statuses import RunStatus


def _covered_from(spec: IntervalSpec, now: datetime, start_at: datetime | None = None) -> datetime:
    """Where a schedule that starts now (or at `start_at`) owes its first interval: after the latest boundary."""
    return latest_boundary(spec, max(now, start_at or now))


async def _remember(conn: asyncpg.Connection, export: BatchExport, fingerprints: dict[str, str]) -> None:
    """Keep what the API made of the schedule, so reconciliation puts back only what changed outside it."""
    await exports.set_schedule_state(conn, export.id, {**(export.schedule_state or {}), **fingerprints})


class TooManyExports(Exception):
    """The project has `BATCH_EXPORTS_MAX_EXPORTS_PER_PROJECT` exports already."""


async def create(rt: Runtime, team_id: int, body: BatchExportIn) -> BatchExport:
    spec = IntervalSpec(body.interval, body.timezone, body.offset_day, body.offset_hour)
    covered = _covered_from(spec, datetime.now(UTC), body.start_at)
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.lock_team(conn, team_id)  # two creates cannot both pass the limit
        limit = rt.settings.max_exports_per_project
        if (count := await exports.count_live(conn, team_id)) >= limit:
            raise TooManyExports(
                f"This project has {count} batch exports, the most BATCH_EXPORTS_MAX_EXPORTS_PER_PROJECT allows "
                f"({limit}); delete one before creating another."
            )
        export = await exports.insert(conn, team_id, body, rt.cipher, covered_until=covered)
        async with calling_temporal("create the export's schedule"):
            await _remember(conn, export, await schedules.create(rt.client, export, rt.settings))
    return export


async def update(rt: Runtime, export: BatchExport, body: BatchExportIn) -> BatchExport:
    async with rt.pool.acquire() as conn, conn.transaction():
        updated = await exports.update(conn, export, body, rt.cipher)
        if updated.interval_spec != export.interval_spec:  # a new schedule: it owes intervals from now on
            covered = _covered_from(updated.interval_spec, datetime.now(UTC), updated.start_at)
            await exports.set_covered_until(conn, export.id, covered)
        async with calling_temporal("update the export's schedule"):
            await _remember(conn, updated, await schedules.sync(rt.client, updated, rt.settings))
    return updated


async def set_paused(rt: Runtime, export: BatchExport, paused: bool) -> BatchExport:
    """Pause or unpause (without a backfill); pausing a paused export (or unpausing a live one) changes nothing."""
    if export.paused == paused:
        return export
    covered = None if paused else _covered_from(export.interval_spec, datetime.now(UTC))
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, paused, covered_until=covered)
        changed = await exports.get(conn, export.id, rt.cipher)
        if changed is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("pause the export's schedule" if paused else "unpause the export's schedule"):
            await _remember(conn, changed, await schedules.sync(rt.client, changed, rt.settings))
    return changed


async def unpause(rt: Runtime, export: BatchExport, *, backfill: bool, now: datetime) -> Backfill | None:
    """Unpause; with `backfill`, also run every interval the pause made the schedule skip.

    The backfill starts where the export was last covered (every interval before has a run), or else at the
    boundary before the pause, and runs only the intervals that have no run: nothing is lost whenever the
    pause happened, and nothing is exported twice. Without it the paused span is forgone.
    """
    if not export.paused:
        return None
    gap, spec = None, export.interval_spec
    if backfill:
        start = export.covered_until or previous_boundary(spec, export.last_paused_at or now)
        try:
            end = latest_boundary(spec, now).isoformat()
            gap = backfilling.bounds(export, start.isoformat(), end, now, rt.settings.max_backfill_intervals)
        except backfilling.TooManyIntervals:
            raise
        except InvalidField:  # paused for less than an interval: nothing was skipped
            pass
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, False, covered_until=_covered_from(spec, now))
        unpaused = await exports.get(conn, export.id, rt.cipher)
        if unpaused is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("unpause the export's schedule"):
            await _remember(conn, unpaused, await schedules.sync(rt.client, unpaused, rt.settings))
        if gap is None:
            return None
        try:
            return await backfilling.start(rt, conn, unpaused, *gap, missing_only=True)
        except BaseException:
            with contextlib.suppress(RPCError):  # undo the unpause with the rest of the request
                await rt.client.get_schedule_handle(str(export.id)).pause(note="unpause failed: backfill not started")
            raise


async def delete(rt: Runtime, export: BatchExport) -> None:
    """Soft-delete the export, delete its schedule and cancel its running runs and backfills."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.soft_delete(conn, export.id)
        async with calling_temporal("delete the export's schedule"):
            await schedules.delete(rt.client, str(export.id))
            await cancel_running(conn, rt.client, export.id)


async def cancel_running(
    conn: asyncpg.Connection | asyncpg.Pool,
    client: Client,
    export_id: uuid.UUID,
    reason: str = "the export was deleted",
) -> None:
    """Ask every running backfill and run of the export to stop (each records `Cancelled` itself)."""
    # One already closed is skipped: reconciliation records how it ended.
    for backfill in await backfills.open_for_export(conn, export_id):
        await backfilling.cancel(client, backfill, reason=reason)
    for run in await runs.open_for_export(conn, export_id):
        await cancel_workflow(client, run.workflow_id, run.workflow_run_id, reason=reason)


async def pause_if_failing(rt: Runtime, export_id: uuid.UUID) -> bool:
    """Pause an export whose latest runs (`auto_pause_after_failures` of them) all `Failed`, and cancel its
    backfills."""
    pool, client, threshold = rt.pool, rt.client, rt.settings.auto_pause_after_failures
    if threshold <= 0:
        return False
    # Only how runs ended for good counts: a FailedRetryable execution is followed by another.
    latest = await runs.latest_final_statuses(pool, export_id, threshold)
    if len(latest) < threshold or any(status is not RunStatus.FAILED for status in latest):
        return False
    async with pool.acquire() as conn, conn.transaction():
        row = await exports.lock(conn, export_id)
        if row is None or row["paused"]:
            return False
        await exports.set_paused(conn, export_id, True)
        async with calling_temporal("pause the export's schedule"):
            await client.get_schedule_handle(str(export_id)).pause(
                note=f"auto-paused: the latest {threshold} runs failed"
            )
        for backfill in await backfills.open_for_export(conn, export_id):
            await backfilling.cancel(client, backfill, reason="the export was paused: its latest runs failed")
        await logs.write(
            conn,
            team_id=row["team_id"],
            batch_export_id=export_id,
            level=logs.Level.WARNING,
            message=f"Paused automatically: the latest {threshold} runs failed. Fix the cause shown in their "
            "errors, then unpause the export (with backfill to export what was missed).",
        )
    rt.metrics.export_paused_automatically()
    return True
