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

from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import BatchExportIn, InvalidField
from batch_exports.runs.run import Backfill
from batch_exports.runtime import Runtime
from batch_exports.services import backfills as backfilling
from batch_exports.services.waiting import wait_for
from batch_exports.store import backfills, coverage, exports, runs
from batch_exports.temporal import schedules
from batch_exports.temporal.client import TemporalUnavailable, calling_temporal, cancel_workflow, is_not_found
from contracts.intervals import IntervalSpec, latest_boundary, previous_boundary


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
            await exports.set_covered_until(conn, export.id, covered, owed_from=True)
        async with calling_temporal("update the export's schedule"):
            await _remember(conn, updated, await schedules.sync(rt.client, updated, rt.settings))
    return updated


class ScheduleRaced(Exception):
    """Temporal holds another paused state than the request set: someone changed the schedule meanwhile."""


async def _held_paused(rt: Runtime, export_id: uuid.UUID) -> bool | None:
    """Whether Temporal holds the export's schedule paused (None: the schedule is missing)."""
    try:
        async with calling_temporal("read the export's schedule"):
            described = await rt.client.get_schedule_handle(str(export_id)).describe()
    except TemporalUnavailable as error:
        if isinstance(error.__cause__, RPCError) and is_not_found(error.__cause__):
            return None
        raise
    return described.schedule.state.paused


async def _answer(rt: Runtime, export_id: uuid.UUID, paused: bool) -> bool:
    """What Temporal holds after the call: the state asked for, or `ScheduleRaced` saying what to do."""
    held = await _held_paused(rt, export_id)
    if held is not None and held != paused:
        now, asked = ("paused", "unpause") if held else ("unpaused", "pause")
        raise ScheduleRaced(
            f"The schedule was {now} in Temporal (the Temporal UI or CLI) while this request changed it, and is {now} "
            f"now; the export shows it within the reconcile interval. To {asked} it, send the request again."
        )
    return paused


async def pause(rt: Runtime, export: BatchExport) -> bool:
    """Pause the export and its schedule; True, as Temporal holds it after the call (a pause made in the Temporal
    UI or CLI that the books do not show yet is taken as the API's own)."""
    if export.paused and await _held_paused(rt, export.id):
        return True
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, True)
        changed = await exports.get(conn, export.id, rt.cipher)
        if changed is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("pause the export's schedule"):
            await _remember(conn, changed, await schedules.sync(rt.client, changed, rt.settings))
    return await _answer(rt, export.id, True)


async def unpause(rt: Runtime, export: BatchExport, *, backfill: bool, now: datetime) -> tuple[bool, Backfill | None]:
    """Unpause; with `backfill`, also run every interval the pause made the schedule skip. Returns what Temporal
    holds after the call (paused: False) and the backfill started, if any.

    The paused state is what the books or Temporal say: a pause made in the Temporal UI or CLI is unpaused even
    before reconciliation shows it. The backfill starts where the export was last covered (every interval before
    has a run), or else at the boundary before the pause, and runs only the intervals that have no run: nothing is
    lost whenever the pause happened, and nothing is exported twice. Without it the paused span is given up
    (recorded, so that a later unpause with backfill still exports it). On an export that is not paused, a
    backfill runs the span the latest unpause without backfill (or outside the API) gave up.
    """
    held = await _held_paused(rt, export.id)
    if not export.paused and held is not True:
        return False, (await _take_back(rt, export, now) if backfill else None)
    gap, spec = None, export.interval_spec
    start = export.covered_until or previous_boundary(spec, export.last_paused_at or now)
    covered = _covered_from(spec, now)
    if backfill:
        gap = _gap(rt, export, start, now)
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.set_paused(conn, export.id, False)
        await exports.set_covered_until(conn, export.id, max(covered, export.covered_until or covered))
        if gap is None:
            await coverage.forgo(conn, export.id, start, covered, "unpaused through the API without backfill")
        unpaused = await exports.get(conn, export.id, rt.cipher)
        if unpaused is None:
            raise exports.ExportNotFound(export.id)
        async with calling_temporal("unpause the export's schedule"):
            await _remember(conn, unpaused, await schedules.sync(rt.client, unpaused, rt.settings))
        started = None
        if gap is not None:
            try:
                started = await backfilling.start(rt, conn, unpaused, *gap, missing_only=True)
            except BaseException:
                with contextlib.suppress(RPCError):  # undo the unpause with the rest of the request
                    await rt.client.get_schedule_handle(str(export.id)).pause(
                        note="unpause failed: backfill not started"
                    )
                raise
    return await _answer(rt, export.id, False), started


def _gap(rt: Runtime, export: BatchExport, start: datetime, now: datetime) -> tuple[datetime, datetime] | None:
    """The whole intervals from `start` to now, or None when there is none (paused for less than an interval)."""
    try:
        end = latest_boundary(export.interval_spec, now).isoformat()
        return backfilling.bounds(export, start.isoformat(), end, now, rt.settings.max_backfill_intervals)
    except backfilling.TooManyIntervals:
        raise
    except InvalidField:
        return None


async def _take_back(rt: Runtime, export: BatchExport, now: datetime) -> Backfill | None:
    """Backfill the span the latest unpause without backfill gave up (its intervals that have no run)."""
    async with rt.pool.acquire() as conn, conn.transaction():
        span = await coverage.take_back_latest(conn, export.id)
        gap = _gap(rt, export, span.after, min(span.through, now)) if span else None
        return await backfilling.start(rt, conn, export, *gap, missing_only=True) if gap else None


async def unpause_gap(rt: Runtime, export: BatchExport, now: datetime) -> tuple[datetime, datetime] | None:
    """The range an unpause with backfill would run now (see `unpause`), changing nothing: what a dry run
    estimates. None when there is nothing to backfill."""
    if not export.paused and await _held_paused(rt, export.id) is not True:
        async with rt.pool.acquire() as conn:
            span = await coverage.latest_given_up(conn, export.id)
        return _gap(rt, export, span.after, min(span.through, now)) if span else None
    return _gap(
        rt, export, export.covered_until or previous_boundary(export.interval_spec, export.last_paused_at or now), now
    )


async def delete(rt: Runtime, export: BatchExport) -> list[uuid.UUID]:
    """Soft-delete the export, delete its schedule and cancel its running runs and backfills, then wait (up to
    `cancel_wait_seconds`) for the runs to stop; returns the runs still open after the wait."""
    async with rt.pool.acquire() as conn, conn.transaction():
        await exports.soft_delete(conn, export.id)
        async with calling_temporal("delete the export's schedule"):
            await schedules.delete(rt.client, str(export.id))
            await cancel_running(conn, rt.client, export.id)

    async def stopped() -> bool:
        return not await runs.open_for_export(rt.pool, export.id)

    if await wait_for(stopped, rt.settings.cancel_wait_seconds):
        return []
    return [run.id for run in await runs.open_for_export(rt.pool, export.id)]


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
