"""The `batch_export_runs` table: one row per workflow execution of the run workflow (workflow id + run id).

Rows map to the run domain's one shape, `batch_exports.runs.run.Run`, here and nowhere else; the guards in the SQL
(only an open run moves, only the latest attempt saves) are the fence between concurrent writers."""

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeAlias

import asyncpg

from batch_exports.runs.ports import LogEntry
from batch_exports.runs.run import FinishedRun, IntervalProgress, Run
from batch_exports.store import logs
from contracts.statuses import FINAL_RUN_STATUSES, OPEN_RUN_STATUSES, RunStatus

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def start(
    conn: Executor,
    *,
    batch_export_id: uuid.UUID,
    workflow_id: str,
    workflow_run_id: str,
    data_interval_start: datetime,
    data_interval_end: datetime,
    backfill_id: uuid.UUID | None,
    replaced_run_id: uuid.UUID | None = None,
    said: str | None = None,
) -> uuid.UUID | None:
    """Record an execution as `Starting`, with `said` in the run's log (an INFO entry) when given; recording the
    same execution again returns the same row. None, and nothing written, when the export is gone or deleted.
    One statement: reading the export's project, the row and the entry took three round trips inside the run
    workflow's task."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"""
        WITH export AS (SELECT team_id FROM batch_exports WHERE id = $2 AND NOT deleted),
        run AS (
            INSERT INTO batch_export_runs (id, batch_export_id, workflow_id, workflow_run_id, status,
                                           data_interval_start, data_interval_end, backfill_id, replaced_run_id)
            SELECT $1, $2, $3, $4, $8, $5, $6, $7, $9 FROM export
            ON CONFLICT (workflow_id, workflow_run_id) DO UPDATE SET last_updated_at = now()
            RETURNING id
        ),
        logged AS (
            INSERT INTO batch_export_logs ({logs.COLUMNS})
            SELECT export.team_id, $2, run.id, $4, $10, $11::text FROM export, run WHERE $11 IS NOT NULL
        )
        SELECT id FROM run
        """,
        uuid.uuid4(),
        batch_export_id,
        workflow_id,
        workflow_run_id,
        data_interval_start,
        data_interval_end,
        backfill_id,
        RunStatus.STARTING,
        replaced_run_id,
        logs.Level.INFO.value,
        said,
    )


async def update_progress(
    conn: asyncpg.Pool,
    run_id: uuid.UUID,
    *,
    status: RunStatus = RunStatus.RUNNING,
    records_completed: int | None = None,
    bytes_exported: int | None = None,
    latest_error: str | None = None,
) -> None:
    """Move an open run forward (its counts never go down); never touches a run that has already finished."""
    await conn.execute(
        """
        UPDATE batch_export_runs
        SET status = $2, records_completed = greatest(records_completed, $3),
            bytes_exported = greatest(bytes_exported, $4), latest_error = coalesce($5, latest_error),
            last_updated_at = now()
        WHERE id = $1 AND status = ANY($6)
        """,
        run_id,
        status,
        records_completed,
        bytes_exported,
        latest_error,
        OPEN_RUN_STATUSES,
    )


async def claim_checkpoint(
    conn: asyncpg.Pool,
    run_id: uuid.UUID,
    attempt: int,
    scheduled: datetime,
    *,
    records_completed: int = 0,
    bytes_exported: int = 0,
) -> tuple[bool, dict[str, Any] | None]:
    """Take the run's export over for the attempt `scheduled` then: whether it may go on (no attempt scheduled
    later has taken it), and the checkpoint the attempts before it saved (None before the first save). In the same
    statement an open run it takes over moves to `Running` with the counts given (which never go down), as
    `update_progress` would: a run that has ended is left as it is."""
    row = await conn.fetchrow(
        """
        WITH claimed AS (
            UPDATE batch_export_runs
            SET checkpoint = coalesce(checkpoint, '{}'::jsonb)
                             || jsonb_build_object('attempt', $2::int, 'scheduled', $3::timestamptz),
                status = CASE WHEN status = ANY($6) THEN $7 ELSE status END,
                records_completed = CASE WHEN status = ANY($6) THEN greatest(records_completed, $4)
                                         ELSE records_completed END,
                bytes_exported = CASE WHEN status = ANY($6) THEN greatest(bytes_exported, $5) ELSE bytes_exported END,
                last_updated_at = CASE WHEN status = ANY($6) THEN now() ELSE last_updated_at END
            WHERE id = $1 AND coalesce((checkpoint->>'scheduled')::timestamptz, '-infinity') <= $3
            RETURNING checkpoint
        )
        SELECT EXISTS (SELECT FROM claimed) AS claimed, (SELECT checkpoint FROM claimed) AS checkpoint
        """,
        run_id,
        attempt,
        scheduled,
        records_completed,
        bytes_exported,
        OPEN_RUN_STATUSES,
        RunStatus.RUNNING,
    )
    assert row is not None
    return row["claimed"], row["checkpoint"]


async def save_checkpoint(
    conn: asyncpg.Pool,
    run_id: uuid.UUID,
    attempt: int,
    scheduled: datetime,
    checkpoint: dict[str, Any],
    records: int,
    bytes_exported: int,
) -> bool:
    """Save the checkpoint of the attempt `scheduled` then, and the records and bytes the destination now holds
    for good (which never go down); False when an attempt scheduled later has taken the export over, and this
    one must stop."""
    saved = await conn.fetchval(
        """
        UPDATE batch_export_runs
        SET checkpoint = $4::jsonb || jsonb_build_object('attempt', $2::int, 'scheduled', $3::timestamptz),
            records_completed = greatest(records_completed, $5),
            bytes_exported = greatest(bytes_exported, $6), last_updated_at = now()
        WHERE id = $1 AND coalesce((checkpoint->>'scheduled')::timestamptz, '-infinity') <= $3
        RETURNING true
        """,
        run_id,
        attempt,
        scheduled,
        checkpoint,
        records,
        bytes_exported,
    )
    return bool(saved)


async def finish(
    conn: asyncpg.Pool,
    run_id: uuid.UUID,
    *,
    status: RunStatus,
    records_completed: int | None = None,
    bytes_exported: int | None = None,
    latest_error: str | None = None,
    cursor: str | None = None,
    only_if_open: bool = False,
    log: LogEntry | None = None,
) -> FinishedRun | None:
    """Record how a run ended; with `only_if_open`, leave a run alone that has already ended (None then). The
    export's latest notice comes back with it: a completed run asks whether it ends a failing spell. `log` is
    written in the same statement, whether or not the run was there to finish (its end's line, in one round trip
    instead of two side by side)."""
    row = await conn.fetchrow(
        f"""
        WITH logged AS (
            INSERT INTO batch_export_logs ({logs.COLUMNS})
            SELECT $9::bigint, $10::uuid, $11::uuid, $12::text, $13::text, $14::text WHERE $9 IS NOT NULL
        )
        UPDATE batch_export_runs
        SET status = $2, records_completed = coalesce($3, records_completed),
            bytes_exported = coalesce($4, bytes_exported), latest_error = $5, cursor = coalesce($6, cursor),
            finished_at = now(), last_updated_at = now()
        WHERE id = $1 AND (NOT $7 OR status = ANY($8))
        RETURNING status, data_interval_end, backfill_id, created_at,
                  (SELECT d.type FROM batch_exports e JOIN batch_export_destinations d ON d.id = e.destination_id
                   WHERE e.id = batch_export_runs.batch_export_id) AS destination_type,
                  (SELECT n.kind FROM batch_export_notices n WHERE n.batch_export_id = batch_export_runs.batch_export_id
                   ORDER BY n.sent_at DESC LIMIT 1) AS latest_notice
        """,
        run_id,
        status,
        records_completed,
        bytes_exported,
        latest_error,
        cursor,
        only_if_open,
        OPEN_RUN_STATUSES,
        *(
            (
                log.team_id,
                log.batch_export_id,
                log.run_id,
                log.workflow_run_id,
                logs.Level(log.level).value,
                log.message,
            )
            if log
            else (None,) * 6
        ),
    )
    return FinishedRun(**{**dict(row), "status": RunStatus(row["status"])}) if row else None


async def get(conn: Executor, run_id: uuid.UUID, batch_export_id: uuid.UUID) -> Run | None:
    row = await conn.fetchrow(
        "SELECT * FROM batch_export_runs WHERE id = $1 AND batch_export_id = $2", run_id, batch_export_id
    )
    return Run(**dict(row)) if row else None


async def latest(conn: Executor, batch_export_id: uuid.UUID, limit: int = 10) -> list[Run]:
    rows = await conn.fetch(
        "SELECT * FROM batch_export_runs WHERE batch_export_id = $1 ORDER BY created_at DESC, id DESC LIMIT $2",
        batch_export_id,
        limit,
    )
    return [Run(**dict(row)) for row in rows]


ORDERINGS = {"created_at", "-created_at", "data_interval_start", "-data_interval_start"}


@dataclass(frozen=True)
class RunFilter:
    statuses: tuple[RunStatus, ...] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    interval_start: datetime | None = None
    interval_end: datetime | None = None


RUN_COLUMNS = ", ".join(Run.model_fields)
"""The columns of a `Run`, in the order of its fields."""


def to_run(row: asyncpg.Record) -> Run:
    return Run(**dict(row))


async def page(
    conn: Executor,
    batch_export_id: uuid.UUID,
    *,
    ordering: str,
    limit: int,
    position: tuple[datetime, uuid.UUID] | None,
    backwards: bool,
    where: RunFilter,
    team_id: int,
) -> list[asyncpg.Record]:
    """A keyset page: up to `limit` runs after `position` in `ordering` (before it when `backwards`), as rows of
    `RUN_COLUMNS` (`to_run` makes one a `Run`): a page of a hundred is shown straight from its rows, which took
    a third of the time their `Run`s did, and the columns a run does not show (its checkpoint) are not read.
    Nothing unless the export is a live one of project `team_id`: the guard a statement of its own made."""
    field = ordering.lstrip("-")
    assert ordering in ORDERINGS
    descending = ordering.startswith("-") != backwards
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    return await conn.fetch(  # type: ignore[no-any-return]
        f"""
        SELECT {RUN_COLUMNS} FROM batch_export_runs
        WHERE batch_export_id = $1
          AND EXISTS (SELECT FROM batch_exports WHERE id = $1 AND team_id = $10 AND NOT deleted)
          AND ($2::timestamptz IS NULL OR ({field}, id) {compare} ($2, $3))
          AND (cardinality($4::text[]) = 0 OR status = ANY($4))
          AND ($5::timestamptz IS NULL OR created_at >= $5) AND ($6::timestamptz IS NULL OR created_at < $6)
          AND ($7::timestamptz IS NULL OR data_interval_start >= $7)
          AND ($8::timestamptz IS NULL OR data_interval_end <= $8)
        ORDER BY {field} {direction}, id {direction} LIMIT $9
        """,
        batch_export_id,
        position[0] if position else None,
        position[1] if position else None,
        list(where.statuses),
        where.created_after,
        where.created_before,
        where.interval_start,
        where.interval_end,
        limit,
        team_id,
    )


async def open_for_export(conn: Executor, batch_export_id: uuid.UUID) -> list[Run]:
    rows = await conn.fetch(
        "SELECT * FROM batch_export_runs WHERE batch_export_id = $1 AND status = ANY($2)",
        batch_export_id,
        OPEN_RUN_STATUSES,
    )
    return [Run(**dict(row)) for row in rows]


async def open_and_quiet(conn: Executor, quiet_for: timedelta) -> list[Run]:
    """Open runs whose row has not moved for `quiet_for`: their execution may have closed unseen."""
    rows = await conn.fetch(
        "SELECT * FROM batch_export_runs WHERE status = ANY($1) AND last_updated_at < now() - $2::interval",
        OPEN_RUN_STATUSES,
        quiet_for,
    )
    return [Run(**dict(row)) for row in rows]


async def latest_final_statuses(conn: Executor, batch_export_id: uuid.UUID, limit: int) -> list[RunStatus]:
    """How the export's latest `limit` runs ended for good (a FailedRetryable execution is followed by another)."""
    rows = await conn.fetch(
        """
        SELECT status FROM batch_export_runs WHERE batch_export_id = $1 AND status = ANY($2)
        ORDER BY created_at DESC LIMIT $3
        """,
        batch_export_id,
        FINAL_RUN_STATUSES,
        limit,
    )
    return [RunStatus(row["status"]) for row in rows]


async def finished_intervals(conn: Executor, backfill_id: uuid.UUID) -> int:
    """Intervals of a backfill whose run has ended for good (a retried or continued run has not)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(DISTINCT data_interval_end) FROM batch_export_runs WHERE backfill_id = $1 AND status = ANY($2)",
        backfill_id,
        FINAL_RUN_STATUSES,
    )


async def for_interval(
    conn: Executor, batch_export_id: uuid.UUID, data_interval_end: datetime, *, other_than: str | None = None
) -> Run | None:
    """The latest run of the interval ending at `data_interval_end` (other than execution `other_than`)."""
    row = await conn.fetchrow(
        """
        SELECT * FROM batch_export_runs
        WHERE batch_export_id = $1 AND data_interval_end = $2 AND ($3::text IS NULL OR workflow_run_id <> $3)
        ORDER BY created_at DESC LIMIT 1
        """,
        batch_export_id,
        data_interval_end,
        other_than,
    )
    return Run(**dict(row)) if row else None


async def interval_ends(
    conn: Executor, batch_export_id: uuid.UUID, after: datetime, through: datetime
) -> set[datetime]:
    """The ends of the intervals in `(after, through]` that have a run."""
    rows = await conn.fetch(
        "SELECT DISTINCT data_interval_end FROM batch_export_runs "
        "WHERE batch_export_id = $1 AND data_interval_end > $2 AND data_interval_end <= $3",
        batch_export_id,
        after,
        through,
    )
    return {row["data_interval_end"] for row in rows}


async def by_execution(conn: Executor, workflow_id: str, workflow_run_id: str) -> Run | None:
    row = await conn.fetchrow(
        "SELECT * FROM batch_export_runs WHERE workflow_id = $1 AND workflow_run_id = $2", workflow_id, workflow_run_id
    )
    return Run(**dict(row)) if row else None


async def progress_in_range(
    conn: Executor, batch_export_id: uuid.UUID, start: datetime, end: datetime, *, backfill_id: uuid.UUID | None
) -> IntervalProgress:
    """Of the intervals ending in `(start, end]`: how many have a run that ended for good, how many of those
    failed (their latest run), how many are running; only the runs of `backfill_id` when given."""
    row = await conn.fetchrow(
        """
        WITH latest AS (
            SELECT DISTINCT ON (data_interval_end) data_interval_end, status, last_updated_at
            FROM batch_export_runs
            WHERE batch_export_id = $1 AND data_interval_end > $2 AND data_interval_end <= $3
              AND ($4::uuid IS NULL OR backfill_id = $4)
            ORDER BY data_interval_end, created_at DESC
        )
        SELECT count(*) FILTER (WHERE status = ANY($5)) AS finished,
               count(*) FILTER (WHERE status = $6) AS failed,
               count(*) FILTER (WHERE status = ANY($7)) AS open,
               max(last_updated_at) AS latest
        FROM latest
        """,
        batch_export_id,
        start,
        end,
        backfill_id,
        FINAL_RUN_STATUSES,
        RunStatus.FAILED,
        OPEN_RUN_STATUSES,
    )
    assert row is not None
    return IntervalProgress(row["finished"], row["failed"], row["open"], row["latest"])


@dataclass(frozen=True)
class Throughput:
    """What an export's recent completed runs took: how many, their records and bytes, and their seconds."""

    runs: int
    records: int
    bytes: int
    seconds: float
    fastest_seconds: float


async def recent_throughput(conn: Executor, batch_export_id: uuid.UUID, limit: int = 50) -> Throughput:
    """Totals over the export's `limit` latest completed runs (nothing when it has none)."""
    row = await conn.fetchrow(
        """
        SELECT count(*) AS runs, coalesce(sum(records_completed), 0)::bigint AS records,
               coalesce(sum(bytes_exported), 0)::bigint AS bytes,
               coalesce(sum(extract(epoch FROM finished_at - created_at)), 0)::float8 AS seconds,
               coalesce(min(extract(epoch FROM finished_at - created_at)), 0)::float8 AS fastest_seconds
        FROM (SELECT records_completed, bytes_exported, created_at, finished_at FROM batch_export_runs
              WHERE batch_export_id = $1 AND status = $2 AND finished_at IS NOT NULL
              ORDER BY created_at DESC LIMIT $3) recent
        """,
        batch_export_id,
        RunStatus.COMPLETED,
        limit,
    )
    assert row is not None
    return Throughput(**dict(row))
