"""The typed inputs and results of the run workflow and its activities.

They carry ids, intervals and counts only: a destination's config (and its secrets) is loaded by the
activity that needs it, from the database, at run time.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class RunInputs:
    """What a schedule (or a backfill) starts a run with."""

    batch_export_id: str
    team_id: int
    interval: str
    timezone: str = "UTC"
    data_interval_end: datetime | None = None
    """Set by backfills; a scheduled run takes its interval end from `TemporalScheduledStartTime`."""
    backfill_id: str | None = None


@dataclass(frozen=True)
class StartRunInputs:
    batch_export_id: str
    workflow_id: str
    workflow_run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    backfill_id: str | None = None


@dataclass(frozen=True)
class StartedRun:
    run_id: str
    settle_delay_seconds: float
    """How long after its interval's end the run waits before reading (a worker setting)."""


@dataclass(frozen=True)
class ExportInputs:
    run_id: str
    batch_export_id: str
    data_interval_start: datetime
    data_interval_end: datetime


@dataclass(frozen=True)
class ExportResult:
    records_completed: int
    bytes_exported: int


@dataclass(frozen=True)
class FinishRunInputs:
    run_id: str
    batch_export_id: str
    team_id: int
    status: str
    records_completed: int | None = None
    bytes_exported: int | None = None
    latest_error: str | None = None
