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
EXPORT_PROGRESS_SIGNAL = "export-progress"
"""The run workflow's signal that carries its export's progress (`ExportProgress`), shown as its current details."""
PROJECT_AT_CAPACITY = "ProjectAtCapacity"
"""The failure of an export attempt that gave its slot back at once: its project has as many attempts running on
the worker as it may (`activities.admission`). Retried after a few seconds; it does not use up an attempt."""
ATTEMPTS_EXHAUSTED = "ExportAttemptsExhausted"
"""The failure of the export's last attempt: the export counts its own attempts (`ExportInputs.max_attempts`), so
the run's retry policy for it names this type as the one that is not retried."""


def fairness_key(team_id: int) -> str:
    """The key Temporal's task queue fairness dispatches by: one project's backlog cannot hold up another's."""
    return f"project-{team_id}"


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
class RunResult:
    """How a run workflow ended, as operators read it."""

    data_interval_start: datetime
    data_interval_end: datetime
    records_completed: int = 0
    bytes_exported: int = 0
    note: str | None = None
    """Set when the execution exported nothing itself, and why (the interval has a run already, or another
    execution, `{export id}-{interval end}`, exports it)."""


@dataclass(frozen=True)
class StartRunInputs:
    batch_export_id: str
    workflow_id: str
    workflow_run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    backfill_id: str | None = None
    cursor: str | None = None
    fresh_fire: bool = False
    """A schedule's first execution for the interval: it exports nothing when the interval has a run already."""
    reset_from: bool = False
    """The execution is a reset (`temporal workflow reset`) of another: its row says which one it replaced."""


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    # Worker settings, handed to the workflow through history so that replays see the same values.
    settle_delay_seconds: float
    export_max_attempts: int
    export_retry_initial_seconds: float
    max_records_per_execution: int
    export_heartbeat_timeout_seconds: float = 20
    already_run_by: str | None = None
    """Set (and no row recorded) when a fresh fire found the interval already has a run: that run's execution."""


@dataclass(frozen=True)
class HandOverInputs:
    """A fire off a boundary hands the last whole interval to the execution whose id is that interval's."""

    batch_export_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    fired_at: datetime


@dataclass(frozen=True)
class ExportProgress:
    """What the export activity tells its run while it writes (shown in the UI as the run's current details)."""

    records: int
    bytes: int


@dataclass(frozen=True)
class ExportInputs:
    run_id: str
    batch_export_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    cursor: str | None = None
    first_file: int = 0
    max_records: int = 0
    max_attempts: int = 0
    """Attempts that may run (ones that gave their slot back to their project's cap do not count); 0: Temporal's
    retry policy counts them all."""
    record_end: bool = False
    """The activity records how the run ended once the export succeeded (`ExportResult.ended`), as the finish-run
    local activity would: a run then needs no local activity and no workflow task more for it."""


@dataclass(frozen=True)
class ExportResult:
    records_completed: int
    bytes_exported: int
    cursor: str | None = None
    """Set when the execution stopped at its record limit: where the next one resumes."""
    files: int = 0
    """How many files the execution wrote (destinations that write files)."""
    ended: bool = False
    """The activity recorded the run's end (asked to by `ExportInputs.record_end`, and the books could take it)."""
    notice: str | None = None
    """The notice recording the end called for (`recovered`), when `ended`."""


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
class NotifyInputs:
    """A notice about a run: `run_failed`, `auto_paused` or `recovered`."""

    batch_export_id: str
    run_id: str
    kind: str


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
    missing_only: bool = False
    """Run only the intervals that have no run yet (unpausing with a backfill of what the pause skipped)."""
    failed_runs: int = 0
    cancelled_runs: int = 0
    finished_runs: int = 0
    batch_export_name: str = ""
    """For operators: each run it starts carries it (`BatchExportName`); empty in histories from before it."""


@dataclass(frozen=True)
class BackfillResult:
    runs: int
    failed: int
    cancelled: int


@dataclass(frozen=True)
class CancelRunsInputs:
    workflow_ids: list[str]
    reason: str


@dataclass(frozen=True)
class IntervalRunsInputs:
    batch_export_id: str
    after: datetime
    through: datetime


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
class ReconcileInputs:
    every_seconds: float
    passes: int = 0
    """How many passes to make before returning (0: for ever, continuing as new now and then)."""


@dataclass(frozen=True)
class ReconcileResult:
    runs: int
    backfills: int
    paused: int
    unpaused: int
    recreated: int
    resynced: int = 0
    gaps: int = 0
    backfills_seen: int = 0
