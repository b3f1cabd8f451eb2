"""The two ports the run's rules work through: the run book (the books of runs, backfills and their logs, which
`batch_exports.store.run_book` keeps in PostgreSQL) and Temporal (`batch_exports.temporal.run_port`).

The SQL behind the run book keeps its guards (an update that touches only an open run, a checkpoint saved only by
the latest attempt): they are the fence between concurrent writers. Which transition to ask for is decided here.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from batch_exports.runs.run import (
    Backfill,
    Ending,
    FinishedRun,
    IntervalProgress,
    NewRun,
    Progress,
    Run,
    SavedCheckpoint,
)
from batch_exports.runs.statuses import BackfillStatus, Closed, RunStatus


class BooksUnavailable(Exception):
    """The books cannot be reached (the database is down, restarting or cut off)."""


class Unreachable(Exception):
    """Temporal could not be reached, or refused the call (`batch_exports.temporal.client.TemporalUnavailable`)."""


Level = Literal["DEBUG", "INFO", "WARNING", "ERROR"]
"""A log entry's level (the values of `batch_exports.store.logs.Level`)."""


@dataclass(frozen=True)
class LogEntry:
    """An entry in an export's log; a run's, with `run_id`."""

    team_id: int
    batch_export_id: uuid.UUID
    level: Level
    message: str
    run_id: uuid.UUID | None = None
    workflow_run_id: str | None = None


class RunBook(Protocol):
    """The books: run rows, backfill rows, the export's log, and what the rules read of the export."""

    async def team_of(self, export_id: uuid.UUID, *, include_deleted: bool = True) -> int | None:
        """The export's project; None when there is no such export (or it is deleted, unless included)."""

    async def run_for_interval(
        self, export_id: uuid.UUID, data_interval_end: datetime, *, other_than: str | None = None
    ) -> Run | None:
        """The latest run of the interval ending at `data_interval_end` (other than execution `other_than`)."""

    async def run_by_execution(self, workflow_id: str, workflow_run_id: str) -> Run | None: ...

    async def start_run(self, run: NewRun, said: str) -> uuid.UUID | None:
        """Record an execution as `Starting`, with `said` in its log (INFO), in one round trip; recording the same
        execution again returns the same row. None, and nothing recorded, when the export is gone or deleted."""

    async def update_run(self, run_id: uuid.UUID, progress: Progress) -> None:
        """Move an open run forward (its counts never go down); a run that has ended is left alone."""

    async def finish_run(
        self, run_id: uuid.UUID, ending: Ending, *, only_if_open: bool = False, log: LogEntry | None = None
    ) -> FinishedRun | None:
        """Record how a run ended; with `only_if_open`, leave a run alone that has already ended (None then). The
        run comes back with the export's latest notice, read in the same round trip, and `log` is written in it too
        (whether or not the run was there to finish)."""

    async def claim_checkpoint(
        self, run_id: uuid.UUID, attempt: int, scheduled: datetime, progress: Progress
    ) -> tuple[bool, dict[str, Any] | None]:
        """Take the export over for the attempt scheduled at `scheduled`: whether no attempt scheduled later has,
        and the checkpoint saved before (None before the first save). Taken over, an open run moves forward by
        `progress` as `update_run` would, in the same round trip."""

    async def save_checkpoint(self, run_id: uuid.UUID, saved: SavedCheckpoint) -> bool:
        """Save the attempt's checkpoint; False when an attempt scheduled later has taken the export over;
        `BooksUnavailable` when the database cannot be reached."""

    async def latest_final_statuses(self, export_id: uuid.UUID, limit: int) -> list[RunStatus]:
        """How the export's latest `limit` runs ended for good, newest first."""

    async def log(self, entry: LogEntry) -> None:
        """An entry in the export's log (the run's, with `run_id`)."""

    async def notification_targets(self, team_id: int) -> int:
        """How many notification targets the project has."""

    async def latest_notice(self, export_id: uuid.UUID) -> str | None:
        """The kind of the latest notice sent about the export."""

    async def pause_for_failures(
        self, export_id: uuid.UUID, message: str, then: Callable[[Sequence[Backfill]], Awaitable[None]]
    ) -> bool:
        """In one transaction holding the export's row: unless it is gone or paused already (False), mark it paused,
        await `then` with its open backfills (its failure undoes the pause) and log `message` as a warning."""

    async def backfill(self, backfill_id: uuid.UUID) -> Backfill | None: ...

    async def mark_backfill_running(self, backfill_id: uuid.UUID, total_runs: int, total_records: int | None) -> None:
        """A started backfill (only one still `Starting`): how many runs it has, and how many records."""

    async def interval_ends(self, export_id: uuid.UUID, after: datetime, through: datetime) -> set[datetime]:
        """The ends of the intervals in `(after, through]` that have a run."""

    async def finished_intervals(self, backfill_id: uuid.UUID) -> int:
        """Intervals of a backfill whose run has ended for good."""

    async def finish_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus, finished_runs: int) -> None: ...

    async def close_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus) -> bool:
        """Record how a backfill ended that did not say so itself; False when it had already ended."""

    async def progress_in_range(
        self, export_id: uuid.UUID, start: datetime, end: datetime, *, backfill_id: uuid.UUID | None
    ) -> IntervalProgress: ...


class Temporal(Protocol):
    """What the rules ask of Temporal."""

    async def closed_as(self, workflow_id: str, run_id: str | None) -> Closed | None:
        """How the execution closed (FAILED when Temporal no longer knows it), or None while it runs."""

    async def reset_base(self, workflow_id: str, run_id: str) -> str | None:
        """The run id of the execution a `temporal workflow reset` made this one from, or None; `Unreachable`
        when Temporal cannot say."""

    async def start_interval_run(self, export_id: uuid.UUID, start: datetime, end: datetime) -> bool:
        """Start the interval's own run execution; False when its id is running already."""

    async def pause_schedule(self, export_id: uuid.UUID, note: str) -> None:
        """Pause the export's schedule; `Unreachable` when Temporal cannot."""

    async def cancel_backfill(self, backfill: Backfill, reason: str) -> bool:
        """Ask the backfill's workflow to stop; False when it has already ended."""
