"""A run's life in the books: the start check, the hand-over of a fire between boundaries, the record of how the
run ended, and the auto-pause that a run of failures calls for.

Each function takes the run book and the Temporal port (`ports`), and the contract the workflow sent; the
activities only decode, call and encode.
"""

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from batch_exports.runs.ports import LogEntry, RunBook, Temporal, Unreachable
from batch_exports.runs.run import Backfill, Ending, FinishedRun, NewRun, Run
from batch_exports.runs.statuses import ENDED_WELL, RunStatus, is_failing
from contracts.intervals import run_workflow_id
from contracts.workflows import FinishRunInputs, HandOverInputs, StartedRun, StartRunInputs

Logger = logging.Logger | logging.LoggerAdapter[Any]
FAILURE_NOTICES = frozenset({"run_failed", "auto_paused"})
"""The notices that say an export is failing (a completion after one of them says `recovered`)."""


class ExportGone(Exception):
    """The run's export no longer exists: nothing to run."""

    def __init__(self, export_id: uuid.UUID) -> None:
        super().__init__(f"batch export {export_id} no longer exists")


@dataclass(frozen=True)
class Started:
    """The run as it starts (or not: `run.already_run_by`), and what its log says of it."""

    run: StartedRun
    said: str = ""


async def start_run(
    book: RunBook, temporal: Temporal, inputs: StartRunInputs, run: StartedRun, logger: Logger
) -> Started:
    """Record the execution as `Starting`, unless it is a fresh fire of the schedule for an interval that has a run
    already (a retry, a backfill or a filled gap got there first): then it exports nothing. `run` holds the
    settings the run goes with."""
    export_id = uuid.UUID(inputs.batch_export_id)
    start, end = inputs.data_interval_start, inputs.data_interval_end
    if inputs.fresh_fire:
        ran = await book.run_for_interval(export_id, end, other_than=inputs.workflow_run_id)
        if ran is not None:
            if (team_id := await book.team_of(export_id, include_deleted=False)) is None:
                raise ExportGone(export_id)
            said = f"The schedule fired for {start.isoformat()} to {end.isoformat()}, which already has a run "
            await book.log(
                LogEntry(team_id, export_id, "INFO", f"{said}({ran.id}, {ran.status.value}): nothing exported again")
            )
            return Started(replace(run, already_run_by=str(ran.id)))
    replaced = await _replaced(book, temporal, inputs, logger) if inputs.reset_from else None
    resumed = f", resuming after {inputs.cursor}" if inputs.cursor else ""
    if replaced is not None:
        resumed += f"; a reset of run {replaced.id} (execution {replaced.workflow_run_id})"
    said = f"Run started for interval {start.isoformat()} to {end.isoformat()}{resumed}"
    # The row and its log line in one round trip, which also finds a deleted export (this runs inside the run
    # workflow's task, which waits for it).
    run_id = await book.start_run(
        NewRun(
            export_id,
            inputs.workflow_id,
            inputs.workflow_run_id,
            start,
            end,
            backfill_id=uuid.UUID(inputs.backfill_id) if inputs.backfill_id else None,
            replaced_run_id=replaced.id if replaced else None,
        ),
        said,
    )
    if run_id is None:
        raise ExportGone(export_id)
    return Started(replace(run, run_id=str(run_id)), said)


async def _replaced(book: RunBook, temporal: Temporal, inputs: StartRunInputs, logger: Logger) -> Run | None:
    """The row of the execution this one is a reset of."""
    try:
        base = await temporal.reset_base(inputs.workflow_id, inputs.workflow_run_id)
    except Unreachable as error:  # the link is worth a log line, not a failed run
        logger.warning("could not read the reset's base run: %s", error)
        return None
    return await book.run_by_execution(inputs.workflow_id, base) if base else None


async def hand_over(book: RunBook, temporal: Temporal, inputs: HandOverInputs) -> str:
    """A fire between boundaries: start the last whole interval's own execution, unless it has a run; the note
    that says what became of it."""
    export_id = uuid.UUID(inputs.batch_export_id)
    team_id = await book.team_of(export_id, include_deleted=False)
    if team_id is None:
        raise ExportGone(export_id)
    start, end = inputs.data_interval_start, inputs.data_interval_end
    span = f"{start.isoformat()} to {end.isoformat()}"
    ran = await book.run_for_interval(export_id, end)
    if ran is not None:
        note = f"the last whole interval, {span}, already has a run ({ran.id}, {ran.status.value})"
    elif await temporal.start_interval_run(export_id, start, end):
        note = f"the last whole interval, {span}, runs as {run_workflow_id(str(export_id), end)}"
    else:
        note = f"the last whole interval, {span}, is running already"
    note = f"Fired at {inputs.fired_at.isoformat()}, between boundaries: {note}"
    await book.log(LogEntry(team_id, export_id, "INFO", note))
    return note


@dataclass(frozen=True)
class Finished:
    """What recording a run's end came to."""

    notice: str | None
    """The notice it calls for: `run_failed`, `auto_paused` or `recovered` (none for a project without targets)."""
    run: FinishedRun | None
    """The run as the books now hold it (None when the row was not there to finish)."""
    auto_paused: bool = False


def ending_message(inputs: FinishRunInputs) -> str:
    message = f"Run {RunStatus(inputs.status).value}"
    if inputs.records_completed is not None:
        message += f": {inputs.records_completed} records exported"
    if inputs.cursor:
        message += f"; the next execution resumes after {inputs.cursor}"
    if inputs.latest_error:
        message += f": {inputs.latest_error}"
    return message


async def finish_run(
    book: RunBook,
    temporal: Temporal,
    inputs: FinishRunInputs,
    *,
    workflow_run_id: str | None,
    auto_pause_after: int,
    logger: Logger,
) -> Finished:
    """Record how the run ended, and what follows: a failed run may pause its export (`auto_pause`), a completed
    one after failures says the export recovered."""
    status = RunStatus(inputs.status)
    run_id, export_id = uuid.UUID(inputs.run_id), uuid.UUID(inputs.batch_export_id)
    message, ok = ending_message(inputs), status in ENDED_WELL
    logger.log(logging.INFO if ok else logging.WARNING, message)
    # The run's end and its log line in one round trip: this runs inside the workflow's task, which waits for it.
    finished = await book.finish_run(
        run_id,
        Ending(status, inputs.records_completed, inputs.bytes_exported, inputs.latest_error, inputs.cursor),
        log=LogEntry(inputs.team_id, export_id, "INFO" if ok else "ERROR", message, run_id, workflow_run_id),
    )
    if status is RunStatus.FAILED:
        paused = False
        try:
            paused = await auto_pause(book, temporal, export_id, auto_pause_after)
        except Unreachable as error:  # the run's own books are written; the next failure tries again
            logger.warning("could not auto-pause export %s: %s", export_id, error)
        notice = "auto_paused" if paused else "run_failed"
        return Finished(notice if await book.notification_targets(inputs.team_id) else None, finished, paused)
    if status is RunStatus.COMPLETED:
        latest = finished.latest_notice if finished is not None else await book.latest_notice(export_id)
        if latest in FAILURE_NOTICES:
            return Finished("recovered", finished)
    return Finished(None, finished)


async def auto_pause(book: RunBook, temporal: Temporal, export_id: uuid.UUID, threshold: int) -> bool:
    """Pause an export whose latest runs (`threshold` of them) all `Failed`, and cancel its backfills; True when
    this call paused it."""
    if threshold <= 0:
        return False
    # Only how runs ended for good counts: a FailedRetryable execution is followed by another.
    if not is_failing(await book.latest_final_statuses(export_id, threshold), threshold):
        return False

    async def stop(backfills: Sequence[Backfill]) -> None:
        await temporal.pause_schedule(export_id, f"auto-paused: the latest {threshold} runs failed")
        for backfill in backfills:
            await temporal.cancel_backfill(backfill, "the export was paused: its latest runs failed")

    return await book.pause_for_failures(
        export_id,
        f"Paused automatically: the latest {threshold} runs failed. Fix the cause shown in their errors, then "
        "unpause the export (with backfill to export what was missed).",
        stop,
    )
