"""The run book (`batch_exports.runs.ports.RunBook`) kept in PostgreSQL: the run domain's port, over the table
modules (`runs`, `backfills`, `logs`, `notifications`, `exports`), whose SQL keeps its guards."""

import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, astuple
from datetime import datetime
from typing import Any

import asyncpg

from batch_exports.runs.ports import BooksUnavailable, LogEntry
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
from batch_exports.store import backfills, db, exports, logs, notifications, runs
from contracts.statuses import BackfillStatus, RunStatus


class PostgresRunBook:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool

    async def team_of(self, export_id: uuid.UUID, *, include_deleted: bool = True) -> int | None:
        return await exports.team_of(self.pool, export_id, include_deleted=include_deleted)

    async def run_for_interval(
        self, export_id: uuid.UUID, data_interval_end: datetime, *, other_than: str | None = None
    ) -> Run | None:
        return await runs.for_interval(self.pool, export_id, data_interval_end, other_than=other_than)

    async def run_by_execution(self, workflow_id: str, workflow_run_id: str) -> Run | None:
        return await runs.by_execution(self.pool, workflow_id, workflow_run_id)

    async def start_run(self, run: NewRun, said: str) -> uuid.UUID | None:
        return await runs.start(self.pool, **asdict(run), said=said)

    async def update_run(self, run_id: uuid.UUID, progress: Progress) -> None:
        await runs.update_progress(self.pool, run_id, **asdict(progress))

    async def finish_run(
        self, run_id: uuid.UUID, ending: Ending, *, only_if_open: bool = False, log: LogEntry | None = None
    ) -> FinishedRun | None:
        return await runs.finish(self.pool, run_id, **asdict(ending), only_if_open=only_if_open, log=log)

    async def claim_checkpoint(
        self, run_id: uuid.UUID, attempt: int, scheduled: datetime, progress: Progress
    ) -> tuple[bool, dict[str, Any] | None]:
        return await runs.claim_checkpoint(
            self.pool,
            run_id,
            attempt,
            scheduled,
            records_completed=progress.records_completed or 0,
            bytes_exported=progress.bytes_exported or 0,
        )

    async def save_checkpoint(self, run_id: uuid.UUID, saved: SavedCheckpoint) -> bool:
        try:
            return await runs.save_checkpoint(self.pool, run_id, *astuple(saved))
        except db.UNAVAILABLE as error:
            raise BooksUnavailable(str(error)) from error

    async def latest_final_statuses(self, export_id: uuid.UUID, limit: int) -> list[RunStatus]:
        return await runs.latest_final_statuses(self.pool, export_id, limit)

    async def log(self, entry: LogEntry) -> None:
        await logs.write(self.pool, **{**asdict(entry), "level": logs.Level(entry.level)})

    async def notification_targets(self, team_id: int) -> int:
        return await notifications.count_targets(self.pool, team_id)

    async def latest_notice(self, export_id: uuid.UUID) -> str | None:
        return await notifications.latest_kind(self.pool, export_id)

    async def pause_for_failures(
        self, export_id: uuid.UUID, message: str, then: Callable[[Sequence[Backfill]], Awaitable[None]]
    ) -> bool:
        async with self.pool.acquire() as conn, conn.transaction():
            row = await exports.lock(conn, export_id)
            if row is None or row["paused"]:
                return False
            await exports.set_paused(conn, export_id, True)
            await then(await backfills.open_for_export(conn, export_id))
            await logs.write(
                conn, team_id=row["team_id"], batch_export_id=export_id, level=logs.Level.WARNING, message=message
            )
        return True

    async def backfill(self, backfill_id: uuid.UUID) -> Backfill | None:
        return await backfills.get(self.pool, backfill_id)

    async def mark_backfill_running(self, backfill_id: uuid.UUID, total_runs: int, total_records: int | None) -> None:
        await backfills.mark_running(self.pool, backfill_id, total_runs, total_records)

    async def interval_ends(self, export_id: uuid.UUID, after: datetime, through: datetime) -> set[datetime]:
        return await runs.interval_ends(self.pool, export_id, after, through)

    async def finished_intervals(self, backfill_id: uuid.UUID) -> int:
        return await runs.finished_intervals(self.pool, backfill_id)

    async def finish_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus, finished_runs: int) -> None:
        await backfills.finish(self.pool, backfill_id, status, finished_runs)

    async def close_backfill(self, backfill_id: uuid.UUID, status: BackfillStatus) -> bool:
        return await backfills.close_if_open(self.pool, backfill_id, status)

    async def progress_in_range(
        self, export_id: uuid.UUID, start: datetime, end: datetime, *, backfill_id: uuid.UUID | None
    ) -> IntervalProgress:
        return await runs.progress_in_range(self.pool, export_id, start, end, backfill_id=backfill_id)
