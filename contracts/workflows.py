"""The workflows' names and the typed inputs and results of the workflows and their activities.

They carry ids, intervals and counts only: a destination's config (and its secrets) is loaded by the
activity that needs it, from the database, at run time.
"""

from dataclasses import dataclass
from datetime import datetime

from contracts.intervals import IntervalSpec
from contracts.statuses import BackfillStatus, RunStatus

RUN_WORKFLOW = "batch-export-run"
BACKFILL_WORKFLOW = "batch-export-backfill"
RECONCILE_WORKFLOW = "batch-exports-reconcile"


@dataclass(frozen=True)
class RunInputs:
    """What a schedule (or a backfill) starts a run with."""

    batch_export_id: str
    team_id: int
    spec: IntervalSpec
    data_interval_start: datetime | None = None
    """Set by backfills; a scheduled run starts at the previous boundary (`contracts.intervals`)."""
    data_interval_end: datetime | None = None
    """Set by backfills; a scheduled run takes it from `TemporalScheduledStartTime`."""
    backfill_id: str | None = None
    cursor: str | None = None
    """Where the previous execution of a continued-as-new chain stopped."""
    first_file: int = 0
    """The number of the first file this execution writes: a continued-as-new chain numbers on."""


@dataclass(frozen=True)
class StartRunInputs:
    batch_export_id: str
    workflow_id: str
    workflow_run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    backfill_id: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    # Worker settings, handed to the workflow through history so that replays see the same values.
    settle_delay_seconds: float
    export_max_attempts: int
    export_retry_initial_seconds: float
    max_records_per_execution: int


@dataclass(frozen=True)
class ExportInputs:
    run_id: str
    batch_export_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    cursor: str | None = None
    first_file: int = 0
    max_records: int = 0


@dataclass(frozen=True)
class ExportResult:
    records_completed: int
    bytes_exported: int
    cursor: str | None = None
    """Set when the execution stopped at its record limit: where the next one resumes."""
    files: int = 0
    """How many files the execution wrote (destinations that write files)."""


@dataclass(frozen=True)
class FinishRunInputs:
    run_id: str
    batch_export_id: str
    team_id: int
    status: RunStatus
    records_completed: int | None = None
    bytes_exported: int | None = None
    latest_error: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class BackfillInputs:
    backfill_id: str
    batch_export_id: str
    team_id: int
    spec: IntervalSpec
    destination_type: str
    start_at: datetime
    end_at: datetime
    concurrency: int
    run_max_attempts: int
    run_retry_initial_seconds: float
    single_interval: bool = False
    """Run exactly `[start_at, end_at)` as one interval (a retry of a run), boundaries or not."""
    resume_from: datetime | None = None
    """Set by continue-as-new: the end of the last interval the previous execution started."""
    failed_runs: int = 0


@dataclass(frozen=True)
class StartBackfillInputs:
    backfill_id: str
    total_runs: int


@dataclass(frozen=True)
class FinishBackfillInputs:
    backfill_id: str
    status: BackfillStatus
    failed_runs: int


@dataclass(frozen=True)
class ReconcileResult:
    runs: int
    backfills: int
    paused: int
    unpaused: int
    recreated: int
