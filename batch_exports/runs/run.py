"""The shapes of a run and a backfill: one each, which storage maps its rows to and the API maps to its bodies."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from contracts.statuses import BackfillStatus, RunStatus


class Run(BaseModel):
    """One run row: one workflow execution (workflow id + run id) of the run workflow, for one data interval.

    Storage maps its rows to it in one place (`store/runs.py`), the API shows it in one (`api/openapi.py`, three
    fields under PostHog's names), in the order of its fields."""

    id: uuid.UUID
    status: RunStatus
    records_completed: int
    records_failed: int
    records_total_count: int | None
    bytes_exported: int
    latest_error: str | None
    data_interval_start: datetime
    data_interval_end: datetime
    cursor: str | None
    created_at: datetime
    finished_at: datetime | None
    last_updated_at: datetime
    batch_export_id: uuid.UUID
    backfill_id: uuid.UUID | None
    workflow_id: str
    workflow_run_id: str
    replaced_run_id: uuid.UUID | None = Field(
        None, description="The run a `temporal workflow reset` made this one replace."
    )


@dataclass(frozen=True)
class NewRun:
    """An execution of the run workflow as it records itself, `Starting`."""

    batch_export_id: uuid.UUID
    workflow_id: str
    workflow_run_id: str
    data_interval_start: datetime
    data_interval_end: datetime
    backfill_id: uuid.UUID | None = None
    replaced_run_id: uuid.UUID | None = None
    """The run a `temporal workflow reset` made this one replace."""


@dataclass(frozen=True)
class Progress:
    """An open run moving forward: its counts never go down, an error it met stays until another replaces it."""

    status: RunStatus = RunStatus.RUNNING
    records_completed: int | None = None
    bytes_exported: int | None = None
    latest_error: str | None = None


@dataclass(frozen=True)
class Ending:
    """How a run ended (None: what the row holds stays)."""

    status: RunStatus
    records_completed: int | None = None
    bytes_exported: int | None = None
    latest_error: str | None = None
    cursor: str | None = None


@dataclass(frozen=True)
class SavedCheckpoint:
    """What an attempt saves of its export: the checkpoint, and the records and bytes the destination holds."""

    attempt: int
    scheduled: datetime
    """When the attempt was scheduled: the fence (a save of an attempt scheduled earlier than the latest is refused)."""
    checkpoint: dict[str, Any]
    records: int
    bytes_exported: int


@dataclass(frozen=True)
class FinishedRun:
    """What the books say about a run that has just been recorded as ended (for the metrics)."""

    status: RunStatus
    destination_type: str
    data_interval_end: datetime
    backfill_id: uuid.UUID | None
    created_at: datetime
    latest_notice: str | None = None
    """The kind of the latest notice sent about the export, read with the run's end (None before the first)."""


@dataclass(frozen=True)
class IntervalProgress:
    """Of a range of intervals: how many have a run that ended for good, how many of those failed (their latest
    run), how many are running."""

    finished: int
    failed: int
    open: int
    latest: datetime | None
    """When a run in the range last moved."""


class BackfillKind(StrEnum):
    API = "api"
    """Started through the API: its runs carry its id."""
    UNPAUSE = "unpause"
    """Runs the intervals a pause skipped that have no run: the others count as done."""
    SCHEDULE = "schedule"
    """`temporal schedule backfill`: the schedule starts its runs; an interval with a run counts as done."""


class Backfill(BaseModel):
    id: uuid.UUID
    team_id: int
    batch_export_id: uuid.UUID
    start_at: datetime | None
    end_at: datetime | None
    status: BackfillStatus
    total_runs: int | None
    finished_runs: int
    total_records_count: int | None
    workflow_id: str | None
    created_at: datetime
    finished_at: datetime | None
    last_updated_at: datetime
    kind: BackfillKind = BackfillKind.API
