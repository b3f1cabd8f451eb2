"""Reconciliation: make the books agree with what Temporal knows, and the schedules with what the exports say.

- Run and backfill rows left open by executions that closed without saying so (terminated, timed out,
  worker lost) get the close status Temporal reports.
- A schedule paused or unpaused outside the API (Temporal UI, `temporal schedule toggle`) is reflected in
  its export's `paused`, with the time and note Temporal recorded; a backfill made with `temporal schedule
  backfill` appears among the export's backfills, its progress counted from its intervals' runs.
- A schedule whose spec, action or policies changed outside the API, or no longer match the service's
  settings, is put back; a missing schedule of a live export is created again.
- No gap: every boundary of a live export after `covered_until` (the boundary up to which every interval
  has a run, or was forgone while paused) that the schedule did not fire at (a wall-clock time a DST change
  skips, a cluster down past the catch-up window, a deleted schedule, a fire of a hand-edited schedule that
  refused itself) gets its run, with the id the scheduled run would have, logged with its cause (`gaps`); one
  a pause outside the API skipped is given up and logged so. An interval whose id Temporal refuses (running
  already) is not counted covered until it has a run.
"""

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.client import ScheduleDescription
from temporalio.service import RPCError, RPCStatusCode

from batch_exports.exports.export import BatchExport
from batch_exports.runs import closing
from batch_exports.runs.run import BackfillKind, Run
from batch_exports.runtime import Runtime
from batch_exports.services import gaps
from batch_exports.store import backfills, coverage, exports, logs, runs
from batch_exports.temporal import scheduler_history, schedules
from contracts.intervals import DataInterval, boundaries, latest_boundary, previous_boundary, run_workflow_id
from contracts.statuses import OPEN_RUN_STATUSES, BackfillStatus, RunStatus

logger = logging.getLogger(__name__)

SETTLING = timedelta(seconds=1)
"""Rows younger than this are left alone: their execution may be about to record itself."""
GAP_GRACE = timedelta(minutes=1)
"""How long after a boundary (and its jitter) the schedule has to start its run before reconciliation does."""
GAPS_PER_PASS = 50
"""Missing intervals one pass starts per export; the rest wait for the next pass."""


@dataclass
class Reconciled:
    runs: int = 0
    backfills: int = 0
    paused: int = 0
    unpaused: int = 0
    recreated: int = 0
    resynced: int = 0
    gaps: int = 0
    backfills_seen: int = 0


async def reconcile_run(rt: Runtime, run: Run) -> RunStatus | None:
    """Record the close status of an open run whose execution has closed; returns it, or None (the rule:
    `batch_exports.runs.closing.close_run`)."""
    closed = await closing.close_run(rt.run_book, rt.run_temporal, run)
    if closed is None:
        return None
    if closed.finished is not None:
        rt.metrics.run_finished(closed.finished)
    return closed.status


RECONCILE_ON_READ_AFTER = timedelta(seconds=1)
READS_AT_ONCE = 8


def may_have_closed_unseen(status: str, last_updated_at: datetime, now: datetime) -> bool:
    """Whether a run shown as it stands at `now` may be open in the books and closed in Temporal."""
    return status in OPEN_RUN_STATUSES and now - last_updated_at > RECONCILE_ON_READ_AFTER


async def as_temporal_says(rt: Runtime, shown: list[Run]) -> list[Run]:
    """`shown` with each open run whose execution has closed unseen (terminated, timed out) recorded as it
    closed: what the API shows agrees with Temporal. Temporal out of reach: the books as they stand."""
    now = datetime.now(UTC)
    stale = [run for run in shown if may_have_closed_unseen(run.status, run.last_updated_at, now)]
    if not stale:
        return shown
    slots = asyncio.Semaphore(READS_AT_ONCE)

    async def refreshed(run: Run) -> Run:
        async with slots:
            with contextlib.suppress(RPCError, RuntimeError):
                if await reconcile_run(rt, run):
                    return await runs.get(rt.pool, run.id, run.batch_export_id) or run
        return run

    fresh = {run.id: run for run in await asyncio.gather(*(refreshed(run) for run in stale))}
    return [fresh.get(run.id, run) for run in shown]


async def reconcile(rt: Runtime, now: datetime | None = None) -> Reconciled:
    done, now = Reconciled(), now or datetime.now(UTC)
    for run in await runs.open_and_quiet(rt.pool, SETTLING):
        with _each("run", run.id):
            if await reconcile_run(rt, run):
                done.runs += 1
    for backfill in await backfills.open_and_quiet(rt.pool, SETTLING):
        with _each("backfill", backfill.id):
            done.backfills += await closing.close_backfill(rt.run_book, rt.run_temporal, backfill, now)
    for export_id in await exports.live_ids(rt.pool):
        with _each("export", export_id):
            await _reconcile_export(rt, export_id, done, now)
    return done


@contextlib.contextmanager
def _each(what: str, item: uuid.UUID) -> Iterator[None]:
    """One item's trouble is logged and skipped; the others are still reconciled."""
    try:
        yield
    except (RPCError, ValueError) as error:
        logger.warning("could not reconcile %s %s: %s", what, item, error)


async def _reconcile_export(rt: Runtime, export_id: uuid.UUID, done: Reconciled, now: datetime) -> None:
    export = await exports.get(rt.pool, export_id, rt.cipher)
    if export is None:
        return
    try:
        described = await rt.client.get_schedule_handle(str(export_id)).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        await _recreate(rt, export, done, now)
        return
    state = dict(export.schedule_state or {})
    export = await _operators_changes(rt, export, described, state, done, now)
    await _put_back(rt, export, described, state, done)
    await _fill_gaps(rt, export, state, done, now)


async def _recreate(rt: Runtime, export: BatchExport, done: Reconciled, now: datetime) -> None:
    async with rt.pool.acquire() as conn, conn.transaction():
        # A delete in flight holds this row: wait for it, and recreate nothing for a deleted export.
        row = await exports.lock(conn, export.id)
        if row is None or row["deleted"]:
            return
        state = dict(export.schedule_state or {})
        # The boundaries between its last sighting and now were missed for this cause (see `gaps`).
        state["recreated"] = {"at": now.isoformat(), "last_seen": state.get("checked_at")}
        state.update(await schedules.sync(rt.client, export, rt.settings))
        await exports.set_schedule_state(conn, export.id, state)
    done.recreated += 1
    await _log(
        rt, export, logs.Level.WARNING, "The export's schedule was missing from Temporal and has been created again"
    )


async def _operators_changes(
    rt: Runtime,
    export: BatchExport,
    described: ScheduleDescription,
    state: dict[str, object],
    done: Reconciled,
    now: datetime,
) -> BatchExport:
    """Pauses, unpauses and backfills made in the UI or CLI, read from the scheduler's own record of them."""
    paused = described.schedule.state.paused
    actions = described.info.num_actions
    seen_actions = state.get("actions")
    # The scheduler's record is read only when something outside the schedule's spec happened: a pause or an
    # unpause the books do not show, or more actions than its fires (a trigger, a backfill).
    expected = _fires_since(export, state.get("checked_at"), now)
    unusual = not isinstance(seen_actions, int) or actions - seen_actions > expected  # first look, or more
    found: list[scheduler_history.Patch] | None = []
    if paused != export.paused or unusual:
        after = state.get("patches_seen_at")
        since = datetime.fromisoformat(after) if isinstance(after, str) else export.created_at
        found = await scheduler_history.patches(rt.client, str(export.id), after=since)
    for patch in found or []:
        for start, end in patch.backfills:
            if await _schedule_backfill(rt, export, start, end, patch):
                done.backfills_seen += 1
    toggle = next((p for p in reversed(found or []) if (p.pause if paused else p.unpause)), None)
    if paused != export.paused:
        at = toggle.at if toggle else now
        covered = None if paused else latest_boundary(export.interval_spec, at)
        async with rt.pool.acquire() as conn, conn.transaction():
            await exports.set_paused(conn, export.id, paused, at=at, covered_until=covered)
            if covered is not None and export.covered_until is not None:
                await coverage.forgo(conn, export.id, export.covered_until, covered, "unpaused outside the API")
        done.paused += paused
        done.unpaused += not paused
        who = f" by {toggle.identity}" if toggle and toggle.identity else ""
        note = described.schedule.state.note
        what = "paused" if paused else "unpaused"
        await _log(
            rt,
            export,
            logs.Level.INFO,
            f"The export's schedule was {what} outside the API (Temporal UI or CLI){who} at {at.isoformat()}"
            f"{f' ({note})' if note else ''}; the export now shows it"
            + ("" if paused else ": the intervals of the paused span are not exported (unpause through the API "
               "with backfill to export them)"),
        )  # fmt: skip
        export = await exports.get(rt.pool, export.id, rt.cipher) or export
    state["actions"] = actions
    state["checked_at"] = now.isoformat()
    if found:
        state["patches_seen_at"] = found[-1].at.isoformat()
    elif found is None:  # the scheduler's record cannot be read here: do not look again for what passed
        state["patches_seen_at"] = now.isoformat()
    await exports.set_schedule_state(rt.pool, export.id, state)
    return export


def _fires_since(export: BatchExport, checked: object, now: datetime) -> int:
    if not isinstance(checked, str):
        return 0
    return sum(1 for _ in boundaries(export.interval_spec, datetime.fromisoformat(checked), now))


async def _schedule_backfill(
    rt: Runtime, export: BatchExport, start: datetime, end: datetime, patch: scheduler_history.Patch
) -> bool:
    """Record a `temporal schedule backfill` as a backfill of the export, unless it holds no interval."""
    ends = list(boundaries(export.interval_spec, start, end))
    if not ends:
        return False
    backfill_id = uuid.uuid4()
    await backfills.insert(
        rt.pool,
        backfill_id,
        team_id=export.team_id,
        batch_export_id=export.id,
        start_at=previous_boundary(export.interval_spec, ends[0]),
        end_at=ends[-1],
        workflow_id=None,
        kind=BackfillKind.SCHEDULE,
        status=BackfillStatus.RUNNING,
        total_runs=len(ends),
    )
    await _log(
        rt,
        export,
        logs.Level.INFO,
        f"A backfill of the schedule from {start.isoformat()} to {end.isoformat()} was made outside the API"
        f"{f' by {patch.identity}' if patch.identity else ''} at {patch.at.isoformat()}: it shows as backfill "
        f"{backfill_id}, {len(ends)} intervals (those that have a run already are not exported again)",
    )
    return True


async def _put_back(
    rt: Runtime, export: BatchExport, described: ScheduleDescription, state: dict[str, object], done: Reconciled
) -> None:
    """Put the schedule back to what the export and the settings say when either side has moved."""
    now_held = schedules.fingerprints(export, rt.settings, described)
    if "desired" not in state:  # first sight of this schedule: remember it
        state.update(now_held)
        await exports.set_schedule_state(rt.pool, export.id, state)
        return
    if now_held == {"desired": state["desired"], "described": state["described"]}:
        return
    why = "changed outside the API" if now_held["desired"] == state["desired"] else "behind the service's settings"
    state.update(await schedules.sync(rt.client, export, rt.settings))
    await exports.set_schedule_state(rt.pool, export.id, state)
    done.resynced += 1
    await _log(rt, export, logs.Level.WARNING, f"The export's schedule was {why}: its spec, action and policies "
               "were put back to what the export says")  # fmt: skip


async def _fill_gaps(
    rt: Runtime, export: BatchExport, state: dict[str, object], done: Reconciled, now: datetime
) -> None:
    """Run the boundaries after `covered_until` the schedule did not fire at, once it has had its chance, naming
    the cause; give up those a pause outside the API skipped. `covered_until` stops before an interval whose run
    Temporal refused to start (its id is running): the next pass tries again."""
    if export.paused:
        return
    spec = export.interval_spec
    if export.covered_until is None:  # first look: it owes intervals from now on
        await exports.set_covered_until(rt.pool, export.id, latest_boundary(spec, now))
        return
    jitter = export.interval.jitter if rt.settings.jitter_enabled else timedelta(0)
    through = now - jitter - GAP_GRACE
    if export.end_at is not None:
        through = min(through, export.end_at)
    owed = [b for b in boundaries(spec, export.covered_until, through) if b > export.covered_until][:GAPS_PER_PASS]
    if not owed:
        return
    have = await runs.interval_ends(rt.pool, export.id, export.covered_until, owed[-1])
    covered, causes = owed[-1], gaps.Causes(rt.client, export, state)
    for end in owed:
        if end in have:
            continue
        interval = DataInterval(previous_boundary(spec, end), end)
        span = f"{interval.start.isoformat()} to {end.isoformat()}"
        cause = await causes.of(end)
        if cause.pause is not None:
            await coverage.forgo(rt.pool, export.id, interval.start, end, cause.text)
            if cause.pause.start is not None:
                await exports.record_pause(rt.pool, export.id, cause.pause.start)
            await _log(rt, export, logs.Level.INFO, f"The schedule did not start the interval {span}: {cause.text}. "
                       "It is not exported, as the paused span of an unpause outside the API is not (unpause through "
                       'the API with {"backfill": true} to export it)')  # fmt: skip
            continue
        if not await _start_gap(rt, export, interval, state):
            covered = interval.start  # not covered: the next pass tries again
            break
        done.gaps += 1
        await _log(rt, export, logs.Level.WARNING, f"The schedule did not start the interval {span} ({cause.text}): "
                   "started it")  # fmt: skip
    await exports.set_covered_until(rt.pool, export.id, covered)
    await exports.set_schedule_state(rt.pool, export.id, state)


async def _start_gap(rt: Runtime, export: BatchExport, interval: DataInterval, state: dict[str, object]) -> bool:
    """Start the interval's run. When its id is running already: an execution the service did not start (no
    execution timeout) is terminated and the run started; one of the service's is waited for (False), said once."""
    if await schedules.start_interval_run(rt.client, rt.settings, export, interval):
        return True
    workflow_id = run_workflow_id(str(export.id), interval.end)
    handle = rt.client.get_workflow_handle(workflow_id)
    described = await handle.describe()
    span = f"{interval.start.isoformat()} to {interval.end.isoformat()}"
    if not described.raw_description.execution_config.workflow_execution_timeout.ToTimedelta():
        reason = "not started by the service (no execution timeout): it held the interval's id and exported nothing"
        with contextlib.suppress(RPCError):  # closed meanwhile: start the run all the same
            await handle.terminate(reason=reason)
        await _log(rt, export, logs.Level.WARNING, f"Temporal refused to start the interval {span}: {workflow_id} was "
                   f"running, {reason}. Terminated it")  # fmt: skip
        return await schedules.start_interval_run(rt.client, rt.settings, export, interval)
    if state.get("refused") != workflow_id:
        state["refused"] = workflow_id
        await _log(rt, export, logs.Level.WARNING, f"Temporal refused to start the interval {span}, which has no run: "
                   f"{workflow_id} is running already (started {described.start_time}) without recording one. The "
                   "interval is not counted covered; reconciliation tries again until it has a run")  # fmt: skip
    return False


async def _log(rt: Runtime, export: BatchExport, level: logs.Level, message: str) -> None:
    await logs.write(rt.pool, team_id=export.team_id, batch_export_id=export.id, level=level, message=message)
