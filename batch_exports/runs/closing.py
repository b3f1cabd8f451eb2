"""Closing from what Temporal reports: a run or a backfill whose execution closed without recording how (it was
terminated, timed out, or its worker was lost) gets the close status Temporal reports (reconciliation)."""

from dataclasses import dataclass
from datetime import datetime, timedelta

from batch_exports.runs.ports import LogEntry, RunBook, Temporal
from batch_exports.runs.run import Backfill, Ending, FinishedRun, Run
from batch_exports.runs.statuses import RunStatus, backfill_closed_as, run_closed_as, schedule_backfill_ended

SCHEDULE_BACKFILL_QUIET = timedelta(minutes=10)
"""A `temporal schedule backfill` whose runs stopped coming this long ago is closed with what it has."""


@dataclass(frozen=True)
class ClosedRun:
    status: RunStatus
    """How the execution closed."""
    finished: FinishedRun | None
    """The run as recorded now; None when it had recorded its end meanwhile."""


async def close_run(book: RunBook, temporal: Temporal, run: Run) -> ClosedRun | None:
    """Record the close status of an open run whose execution has closed (None while it runs)."""
    closed = await temporal.closed_as(run.workflow_id, run.workflow_run_id)
    if closed is None:
        return None
    status = run_closed_as(closed)
    message = f"The execution ended as {status.value} without recording it (recorded by reconciliation)"
    finished = await book.finish_run(run.id, Ending(status, latest_error=message), only_if_open=True)
    if finished is not None and (team_id := await book.team_of(run.batch_export_id)) is not None:
        await book.log(LogEntry(team_id, run.batch_export_id, "WARNING", message, run.id, run.workflow_run_id))
    return ClosedRun(status, finished)


async def close_backfill(book: RunBook, temporal: Temporal, backfill: Backfill, now: datetime) -> bool:
    """Close a backfill whose workflow closed unseen; close a schedule backfill (no workflow of its own) whose runs
    are all in, or stopped coming; True when this call closed it."""
    if backfill.workflow_id:
        closed = await temporal.closed_as(backfill.workflow_id, None)
        if closed is None:
            return False
        return await book.close_backfill(backfill.id, backfill_closed_as(closed))
    if backfill.start_at is None or backfill.end_at is None:
        return False
    progress = await book.progress_in_range(
        backfill.batch_export_id, backfill.start_at, backfill.end_at, backfill_id=None
    )
    total = backfill.total_runs or 0
    quiet = now - max(progress.latest or backfill.created_at, backfill.created_at) > SCHEDULE_BACKFILL_QUIET
    status = schedule_backfill_ended(
        finished=progress.finished, failed=progress.failed, running=progress.open, total=total, quiet=quiet
    )
    if status is None:
        return False
    ended = await book.close_backfill(backfill.id, status)
    if ended and progress.finished < total:
        team_id = await book.team_of(backfill.batch_export_id)
        await book.log(
            LogEntry(
                team_id or backfill.team_id,
                backfill.batch_export_id,
                "WARNING",
                f"The schedule backfill {backfill.id} ran {progress.finished} of its {total} intervals: the "
                "others were never started (the CLI's default overlap policy Skip drops a fire while a run is "
                "open; pass --overlap-policy AllowAll, or backfill through the API)",
            )
        )
    return ended
