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

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from batch_exports.runtime import Runtime
from batch_exports.store import backfills, exports, logs, runs
from batch_exports.store.runs import Run
from batch_exports.temporal import schedules
from contracts.statuses import BackfillStatus, RunStatus

logger = logging.getLogger(__name__)

CLOSE_STATUSES = {
    WorkflowExecutionStatus.COMPLETED: RunStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: RunStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: RunStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: RunStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: RunStatus.TIMED_OUT,
    WorkflowExecutionStatus.CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
}
BACKFILL_CLOSE_STATUSES = {
    WorkflowExecutionStatus.COMPLETED: BackfillStatus.COMPLETED,
    WorkflowExecutionStatus.FAILED: BackfillStatus.FAILED,
    WorkflowExecutionStatus.CANCELED: BackfillStatus.CANCELLED,
    WorkflowExecutionStatus.TERMINATED: BackfillStatus.TERMINATED,
    WorkflowExecutionStatus.TIMED_OUT: BackfillStatus.TIMED_OUT,
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


async def _closed_as(client: Client, workflow_id: str, run_id: str | None) -> WorkflowExecutionStatus | None:
    """How the execution closed (FAILED when Temporal no longer knows it), or None while it runs."""
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return WorkflowExecutionStatus.FAILED  # gone from Temporal (retention) without a word: it did not complete
    if described.status is None or described.status == WorkflowExecutionStatus.RUNNING:
        return None
    return described.status


async def reconcile_run(rt: Runtime, run: Run) -> RunStatus | None:
    """Record the close status of an open run whose execution has closed; returns it, or None."""
    closed = await _closed_as(rt.client, run.workflow_id, run.workflow_run_id)
    if closed is None:
        return None
    status = CLOSE_STATUSES.get(closed, RunStatus.FAILED)
    message = f"The execution ended as {status.value} without recording it (recorded by reconciliation)"
    if await runs.finish(rt.pool, run.id, status=status, latest_error=message, only_if_open=True):
        team_id = await exports.team_of(rt.pool, run.batch_export_id)
        if team_id is not None:
            await logs.write(
                rt.pool,
                team_id=team_id,
                batch_export_id=run.batch_export_id,
                run_id=run.id,
                workflow_run_id=run.workflow_run_id,
                level=logs.Level.WARNING,
                message=message,
            )
    return status


async def reconcile(rt: Runtime) -> Reconciled:
    done = Reconciled()
    for run in await runs.open_and_quiet(rt.pool, SETTLING):
        with _each("run", run.id):
            if await reconcile_run(rt, run):
                done.runs += 1
    for backfill in await backfills.open_and_quiet(rt.pool, SETTLING):
        with _each("backfill", backfill.id):
            closed = await _closed_as(rt.client, backfill.workflow_id or "", None)
            if closed is not None:
                status = BACKFILL_CLOSE_STATUSES.get(closed, BackfillStatus.FAILED)
                done.backfills += await backfills.close_if_open(rt.pool, backfill.id, status)
    for export_id in await exports.live_ids(rt.pool):
        with _each("schedule of export", export_id):
            await _reconcile_schedule(rt, export_id, done)
    return done


@contextlib.contextmanager
def _each(what: str, item: uuid.UUID) -> Iterator[None]:
    """One item's trouble is logged and skipped; the others are still reconciled."""
    try:
        yield
    except (RPCError, ValueError) as error:
        logger.warning("could not reconcile %s %s: %s", what, item, error)


async def _reconcile_schedule(rt: Runtime, export_id: uuid.UUID, done: Reconciled) -> None:
    export = await exports.get(rt.pool, export_id, rt.cipher)
    if export is None:
        return
    try:
        paused = (await rt.client.get_schedule_handle(str(export_id)).describe()).schedule.state.paused
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        async with rt.pool.acquire() as conn, conn.transaction():
            # A delete in flight holds this row: wait for it, and recreate nothing for a deleted export.
            row = await exports.lock(conn, export_id)
            if row is None or row["deleted"]:
                return
            await schedules.sync(rt.client, export, rt.settings)
        done.recreated += 1
        await logs.write(
            rt.pool,
            team_id=export.team_id,
            batch_export_id=export_id,
            level=logs.Level.WARNING,
            message="The export's schedule was missing from Temporal and has been created again",
        )
        return
    if paused != export.paused:
        async with rt.pool.acquire() as conn:
            await exports.set_paused(conn, export_id, paused)
        if paused:
            done.paused += 1
        else:
            done.unpaused += 1
        await logs.write(
            rt.pool,
            team_id=export.team_id,
            batch_export_id=export_id,
            level=logs.Level.INFO,
            message=f"The export's schedule was {'paused' if paused else 'unpaused'} outside the API (Temporal UI "
            "or CLI); the export now shows it",
        )
