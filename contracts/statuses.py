"""The status vocabularies of runs and backfills (the exact strings the API shows)."""

from enum import StrEnum


class RunStatus(StrEnum):
    """One run row is one workflow execution; its status is how that execution stands or ended."""

    STARTING = "Starting"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    FAILED_RETRYABLE = "FailedRetryable"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"
    TIMED_OUT = "TimedOut"
    CONTINUED_AS_NEW = "ContinuedAsNew"

    @property
    def is_open(self) -> bool:
        return self in OPEN_RUN_STATUSES


OPEN_RUN_STATUSES = (RunStatus.STARTING, RunStatus.RUNNING)
FINAL_RUN_STATUSES = (
    RunStatus.COMPLETED,
    RunStatus.FAILED,
    RunStatus.CANCELLED,
    RunStatus.TERMINATED,
    RunStatus.TIMED_OUT,
)
"""How a run's interval ended for good: no execution of it follows (unlike FailedRetryable or ContinuedAsNew)."""


class BackfillStatus(StrEnum):
    STARTING = "Starting"
    RUNNING = "Running"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELLED = "Cancelled"
    TERMINATED = "Terminated"
    TIMED_OUT = "TimedOut"

    @property
    def is_open(self) -> bool:
        return self in OPEN_BACKFILL_STATUSES


OPEN_BACKFILL_STATUSES = (BackfillStatus.STARTING, BackfillStatus.RUNNING)
