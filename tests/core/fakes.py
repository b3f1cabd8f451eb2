"""In-memory fakes of the run domain's two ports: the run book and Temporal.

They keep the guards the SQL keeps (a finished run is not moved, a checkpoint is saved only by the latest attempt,
a pause is undone when Temporal refuses it), so that the rules are driven as the real books would answer them.
"""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from batch_exports.runs.ports import BooksUnavailable, Level, LogEntry, Unreachable
from batch_exports.runs.run import (
    Backfill,
    BackfillKind,
    Ending,
    FinishedRun,
    IntervalProgress,
    NewRun,
    Progress,
    Run,
    SavedCheckpoint,
)
from batch_exports.runs.statuses import (
    FINAL_RUN_STATUSES,
    OPEN_BACKFILL_STATUSES,
    OPEN_RUN_STATUSES,
    BackfillStatus,
    Closed,
    RunStatus,
)
from contracts.intervals import run_workflow_id

NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class FakeRunBook:
    teams: dict[uuid.UUID, int] = field(default_factory=dict)
    """The project of each export."""
    deleted: set[uuid.UUID] = field(default_factory=set)
    paused: set[uuid.UUID] = field(default_factory=set)
    runs: dict[uuid.UUID, Run] = field(default_factory=dict)
    checkpoints: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)
    backfills: dict[uuid.UUID, Backfill] = field(default_factory=dict)
    logs: list[LogEntry] = field(default_factory=list)
    targets: dict[int, int] = field(default_factory=dict)
    notices: dict[uuid.UUID, str] = field(default_factory=dict)
    clock: datetime = NOW
    down: bool = False
    """The database is out of reach: logs and checkpoints are refused."""

    # Set-up helpers (not part of the port).
    def export(self, team_id: int = 1) -> uuid.UUID:
        export_id = uuid.uuid4()
        self.teams[export_id] = team_id
        return export_id

    def add_run(
        self,
        export_id: uuid.UUID,
        end: datetime = NOW,
        status: RunStatus = RunStatus.RUNNING,
        *,
        workflow_run_id: str | None = None,
        backfill_id: uuid.UUID | None = None,
        updated: datetime | None = None,
    ) -> Run:
        self.clock += timedelta(seconds=1)
        run = Run(
            id=uuid.uuid4(),
            status=status,
            records_completed=0,
            records_failed=0,
            records_total_count=None,
            bytes_exported=0,
            latest_error=None,
            data_interval_start=end - HOUR,
            data_interval_end=end,
            cursor=None,
            created_at=self.clock,
            finished_at=None if status.is_open else self.clock,
            last_updated_at=updated or self.clock,
            batch_export_id=export_id,
            backfill_id=backfill_id,
            workflow_id=run_workflow_id(str(export_id), end),
            workflow_run_id=workflow_run_id or str(uuid.uuid4()),
        )
        self.runs[run.id] = run
        return run

    def add_backfill(
        self,
        export_id: uuid.UUID,
        *,
        total: int = 10,
        workflow_id: str | None = "backfill",
        status: BackfillStatus = BackfillStatus.RUNNING,
        kind: BackfillKind = BackfillKind.API,
    ) -> Backfill:
        backfill = Backfill(
            id=uuid.uuid4(),
            team_id=self.teams[export_id],
            batch_export_id=export_id,
            start_at=NOW - total * HOUR,
            end_at=NOW,
            status=status,
            total_runs=total,
            finished_runs=0,
            total_records_count=None,
            workflow_id=workflow_id,
            created_at=NOW - timedelta(hours=2),
            finished_at=None,
            last_updated_at=NOW,
            kind=kind,
        )
        self.backfills[backfill.id] = backfill
        return backfill

    def said(self, level: Level | None = None) -> list[str]:
        return [entry.message for entry in self.logs if level is None or entry.level == level]

    def _reach(self) -> None:
        if self.down:
            raise BooksUnavailable("connection refused")

    # The port.
    async def team_of(self, export_id: uuid.UUID, *, include_deleted: bool = True) -> int | None:
        if export_id in self.deleted and not include_deleted:
            return None
        return self.teams.get(export_id)

    async def run_for_interval(
        self, export_id: uuid.UUID, data_interval_end: datetime, *, other_than: str | None = None
    ) -> Run | None:
        found = [
            run
            for run in self.runs.values()
            if run.batch_export_id == export_id
            and run.data_interval_end == data_interval_end
            and run.workflow_run_id != other_than
        ]
        return max(found, key=lambda run: run.created_at, default=None)

    async def run_by_execution(self, workflow_id: str, workflow_run_id: str) -> Run | None:
        return next(
            (r for r in self.runs.values() if (r.workflow_id, r.workflow_run_id) == (workflow_id, workflow_run_id)),
            None,
        )

    async def start_run(self, run: NewRun, said: str) -> uuid.UUID | None:
        if (team_id := await self.team_of(run.batch_export_id, include_deleted=False)) is None:
            return None
        if (same := await self.run_by_execution(run.workflow_id, run.workflow_run_id)) is None:
            same = self.add_run(
                run.batch_export_id, run.data_interval_end, RunStatus.STARTING, backfill_id=run.backfill_id
            )
            self.runs[same.id] = same.model_copy(update=asdict(run))
        await self.log(LogEntry(team_id, run.batch_export_id, "INFO", said, same.id, run.workflow_run_id))
        return same.id

    async def update_run(self, run_id: uuid.UUID, progress: Progress) -> None:
        run = self.runs[run_id]
        if run.status not in OPEN_RUN_STATUSES:
            return
        self.runs[run_id] = run.model_copy(
            update={
                "status": progress.status,
                "records_completed": max(run.records_completed, progress.records_completed or 0),
                "bytes_exported": max(run.bytes_exported, progress.bytes_exported or 0),
                "latest_error": run.latest_error if progress.latest_error is None else progress.latest_error,
            }
        )

    async def finish_run(
        self, run_id: uuid.UUID, ending: Ending, *, only_if_open: bool = False, log: LogEntry | None = None
    ) -> FinishedRun | None:
        if log is not None:
            await self.log(log)
        run = self.runs.get(run_id)
        if run is None or (only_if_open and run.status not in OPEN_RUN_STATUSES):
            return None
        kept = {"records_completed", "bytes_exported", "cursor"}
        changes = {name: value for name, value in asdict(ending).items() if value is not None or name not in kept}
        self.runs[run_id] = run = run.model_copy(update={**changes, "finished_at": self.clock})
        return FinishedRun(
            run.status,
            "File",
            run.data_interval_end,
            run.backfill_id,
            run.created_at,
            self.notices.get(run.batch_export_id),
        )

    async def claim_checkpoint(
        self, run_id: uuid.UUID, attempt: int, scheduled: datetime, progress: Progress
    ) -> tuple[bool, dict[str, Any] | None]:
        saved = self.checkpoints.get(run_id)
        if saved is not None and saved["scheduled"] > scheduled:
            return False, None
        self.checkpoints[run_id] = {**(saved or {}), "attempt": attempt, "scheduled": scheduled}
        await self.update_run(run_id, progress)
        return True, dict(self.checkpoints[run_id])

    async def save_checkpoint(self, run_id: uuid.UUID, saved: SavedCheckpoint) -> bool:
        self._reach()
        held = self.checkpoints.get(run_id)
        if held is not None and held["scheduled"] > saved.scheduled:
            return False
        self.checkpoints[run_id] = {**saved.checkpoint, "attempt": saved.attempt, "scheduled": saved.scheduled}
        run = self.runs[run_id]  # the counts move whatever the status (as in the SQL)
        self.runs[run_id] = run.model_copy(
            update={
                "records_completed": max(run.records_completed, saved.records),
                "bytes_exported": max(run.bytes_exported, saved.bytes_exported),
            }
        )
        return True

    async def latest_final_statuses(self, export_id: uuid.UUID, limit: int) -> list[RunStatus]:
        ended = [r for r in self.runs.values() if r.batch_export_id == export_id and r.status in FINAL_RUN_STATUSES]
        return [r.status for r in sorted(ended, key=lambda r: r.created_at, reverse=True)][:limit]

    async def log(self, entry: LogEntry) -> None:
        self._reach()
        self.logs.append(entry)

    async def notification_targets(self, team_id: int) -> int:
        return self.targets.get(team_id, 0)

    async def latest_notice(self, export_id: uuid.UUID) -> str | None:
        return self.notices.get(export_id)

    async def pause_for_failures(
        self, export_id: uuid.UUID, message: str, then: Callable[[Sequence[Backfill]], Awaitable[None]]
    ) -> bool:
        if export_id not in self.teams or export_id in self.paused:
            return False
        self.paused.add(export_id)
        try:
            await then([b for b in self.backfills.values() if b.batch_export_id == export_id and b.status.is_open])
        except BaseException:
            self.paused.discard(export_id)  # the transaction rolls back
            raise
        await self.log(LogEntry(self.teams[export_id], export_id, "WARNING", message))
        return True

    async def backfill(self, backfill_id: uuid.UUID) -> Backfill | None:
        return self.backfills.get(backfill_id)

    async def mark_backfill_running(self, backfill_id: uuid.UUID, total_runs: int, total_records: int | None) -> None:
        backfill = self.backfills[backfill_id]
        if backfill.status is BackfillStatus.STARTING:
            update = {"status": BackfillStatus.RUNNING, "total_runs": total_runs, "total_records_count": total_records}
            self.backfills[backfill_id] = backfill.model_copy(update=update)

    async def interval_ends(self, export_id: uuid.UUID, after: datetime, through: datetime) -> set[datetime]:
        return {
            r.data_interval_end
            for r in self.runs.values()
            if r.batch_export_id == export_id and after < r.data_interval_end <= through
        }

    async def finished_intervals(self, backfill_id: uuid.UUID) -> int:
        return len(
            {
                r.data_interval_end
                for r in self.runs.values()
                if r.backfill_id == backfill_id and r.status in FINAL_RUN_STATUSES
            }
        )

    async def finish_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus, finished_runs: int) -> None:
        backfill = self.backfills[backfill_id]
        self.backfills[backfill_id] = backfill.model_copy(
            update={"status": status, "finished_runs": finished_runs, "finished_at": self.clock}
        )

    async def close_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus) -> bool:
        backfill = self.backfills[backfill_id]
        if backfill.status not in OPEN_BACKFILL_STATUSES:
            return False
        self.backfills[backfill_id] = backfill.model_copy(update={"status": status, "finished_at": self.clock})
        return True

    async def progress_in_range(
        self, export_id: uuid.UUID, start: datetime, end: datetime, *, backfill_id: uuid.UUID | None
    ) -> IntervalProgress:
        latest: dict[datetime, Run] = {}
        for run in sorted(self.runs.values(), key=lambda r: r.created_at):
            mine = backfill_id is None or run.backfill_id == backfill_id
            if mine and run.batch_export_id == export_id and start < run.data_interval_end <= end:
                latest[run.data_interval_end] = run
        return IntervalProgress(
            finished=sum(r.status in FINAL_RUN_STATUSES for r in latest.values()),
            failed=sum(r.status is RunStatus.FAILED for r in latest.values()),
            open=sum(r.status in OPEN_RUN_STATUSES for r in latest.values()),
            latest=max((r.last_updated_at for r in latest.values()), default=None),
        )


@dataclass
class FakeTemporal:
    closed: dict[str, Closed | None] = field(default_factory=dict)
    """How each execution (by workflow id, or workflow id/run id) closed; None while it runs."""
    running: set[str] = field(default_factory=set)
    """Workflow ids that are running: a start with one of them is refused."""
    started: list[tuple[uuid.UUID, datetime, datetime]] = field(default_factory=list)
    reset_bases: dict[str, str] = field(default_factory=dict)
    paused: dict[uuid.UUID, str] = field(default_factory=dict)
    cancelled: list[uuid.UUID] = field(default_factory=list)
    unreachable: bool = False

    def _reach(self) -> None:
        if self.unreachable:
            raise Unreachable("connection refused")

    async def closed_as(self, workflow_id: str, run_id: str | None) -> Closed | None:
        key = f"{workflow_id}/{run_id}" if run_id else workflow_id
        return self.closed.get(key, Closed.FAILED)

    async def reset_base(self, workflow_id: str, run_id: str) -> str | None:
        self._reach()
        return self.reset_bases.get(run_id)

    async def start_interval_run(self, export_id: uuid.UUID, start: datetime, end: datetime) -> bool:
        self._reach()
        workflow_id = run_workflow_id(str(export_id), end)
        if workflow_id in self.running:
            return False
        self.running.add(workflow_id)
        self.started.append((export_id, start, end))
        return True

    async def pause_schedule(self, export_id: uuid.UUID, note: str) -> None:
        self._reach()
        self.paused[export_id] = note

    async def cancel_backfill(self, backfill: Backfill, reason: str) -> bool:
        self._reach()
        self.cancelled.append(backfill.id)
        return bool(backfill.workflow_id)
