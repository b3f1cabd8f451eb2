"""Every status decision of a run and a backfill, as plain functions: the one place a status is chosen.

Pure and sandbox-safe: the workflows import it (it imports nothing but `contracts`).
"""

from collections.abc import Sequence
from enum import StrEnum

from contracts.statuses import FINAL_RUN_STATUSES, OPEN_BACKFILL_STATUSES, OPEN_RUN_STATUSES, BackfillStatus, RunStatus

__all__ = [
    "FINAL_RUN_STATUSES",
    "OPEN_BACKFILL_STATUSES",
    "OPEN_RUN_STATUSES",
    "BackfillStatus",
    "Closed",
    "RunStatus",
]


class Closed(StrEnum):
    """How Temporal says an execution closed (the names of `temporalio.client.WorkflowExecutionStatus`)."""

    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELED = "CANCELED"
    TERMINATED = "TERMINATED"
    TIMED_OUT = "TIMED_OUT"
    CONTINUED_AS_NEW = "CONTINUED_AS_NEW"


RUN_CLOSED_AS = {
    Closed.COMPLETED: RunStatus.COMPLETED,
    Closed.FAILED: RunStatus.FAILED,
    Closed.CANCELED: RunStatus.CANCELLED,
    Closed.TERMINATED: RunStatus.TERMINATED,
    Closed.TIMED_OUT: RunStatus.TIMED_OUT,
    Closed.CONTINUED_AS_NEW: RunStatus.CONTINUED_AS_NEW,
}
BACKFILL_CLOSED_AS = {
    Closed.COMPLETED: BackfillStatus.COMPLETED,
    Closed.FAILED: BackfillStatus.FAILED,
    Closed.CANCELED: BackfillStatus.CANCELLED,
    Closed.TERMINATED: BackfillStatus.TERMINATED,
    Closed.TIMED_OUT: BackfillStatus.TIMED_OUT,
}
ENDED_WELL = frozenset({RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW, RunStatus.CANCELLED})
"""Endings that are not faults: an operator's cancel is an ending like a completion."""
COUNTED_AS_RUN = (RunStatus.COMPLETED, RunStatus.STARTING, RunStatus.RUNNING, RunStatus.CONTINUED_AS_NEW)
"""An interval with a run of one of these is covered: it completed, or is under way (a continued run's next
execution has a row of its own)."""


def run_closed_as(closed: Closed) -> RunStatus:
    """The status of a run whose execution closed without recording it (an unknown close counts as Failed)."""
    return RUN_CLOSED_AS.get(closed, RunStatus.FAILED)


def backfill_closed_as(closed: Closed) -> BackfillStatus:
    """The status of a backfill whose workflow closed without recording it (continued as new: Failed)."""
    return BACKFILL_CLOSED_AS.get(closed, BackfillStatus.FAILED)


def failure_status(*, cancelled: bool, non_retryable: bool, attempt: int, maximum_attempts: int) -> RunStatus:
    """How a run's execution that did not complete ends: Cancelled, FailedRetryable while the run's retry policy
    will execute it again (`maximum_attempts` 0: without end), else Failed."""
    if cancelled:
        return RunStatus.CANCELLED
    if non_retryable:
        return RunStatus.FAILED
    return RunStatus.FAILED_RETRYABLE if maximum_attempts == 0 or attempt < maximum_attempts else RunStatus.FAILED


def export_ended(cursor: str | None) -> RunStatus:
    """How an execution whose export returned ends: continued as new when it stopped at its record limit."""
    return RunStatus.COMPLETED if cursor is None else RunStatus.CONTINUED_AS_NEW


def is_failing(latest_final: Sequence[RunStatus], threshold: int) -> bool:
    """Whether an export's latest `threshold` runs that ended for good all failed (0: never)."""
    return 0 < threshold <= len(latest_final) and all(status is RunStatus.FAILED for status in latest_final)


def backfill_ended(*, failed_runs: int) -> BackfillStatus:
    """How a backfill whose runs have all closed ends: Failed when one of them failed (cancelled ones do not count)."""
    return BackfillStatus.FAILED if failed_runs else BackfillStatus.COMPLETED


def backfill_stopped(*, cancelled: bool) -> BackfillStatus:
    """How a backfill whose own workflow stopped before its runs were all in ends: Cancelled when it was cancelled,
    else Failed."""
    return BackfillStatus.CANCELLED if cancelled else BackfillStatus.FAILED


def schedule_backfill_ended(
    *, finished: int, failed: int, running: int, total: int, quiet: bool
) -> BackfillStatus | None:
    """How a `temporal schedule backfill` ends, counted from its intervals' runs: None while a run is open, or while
    some have not run and runs still came lately; Failed when one failed or some never ran."""
    if running or (finished < total and not quiet):
        return None
    return BackfillStatus.FAILED if failed or finished < total else BackfillStatus.COMPLETED
