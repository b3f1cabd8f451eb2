"""The `batch_export_backfills` table: one row per backfill, moving from `Starting` to how it ended."""

import uuid
from datetime import datetime, timedelta
from typing import TypeAlias

import asyncpg

from batch_exports.runs.run import Backfill, BackfillKind
from contracts.statuses import FINAL_RUN_STATUSES, OPEN_BACKFILL_STATUSES, BackfillStatus

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def insert(
    conn: Executor,
    backfill_id: uuid.UUID,
    *,
    team_id: int,
    batch_export_id: uuid.UUID,
    start_at: datetime,
    end_at: datetime,
    workflow_id: str | None,
    kind: BackfillKind = BackfillKind.API,
    status: BackfillStatus = BackfillStatus.STARTING,
    total_runs: int | None = None,
) -> None:
    await conn.execute(
        """
        INSERT INTO batch_export_backfills (id, team_id, batch_export_id, start_at, end_at, status, workflow_id,
                                            kind, total_runs)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
        """,
        backfill_id,
        team_id,
        batch_export_id,
        start_at,
        end_at,
        status,
        workflow_id,
        kind,
        total_runs,
    )


async def lock_team(conn: asyncpg.Connection, team_id: int) -> None:
    """Serialise starting backfills of one project until the transaction ends (so a limit holds)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('backfills', $1))", team_id)


async def count_open(conn: Executor, team_id: int) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM batch_export_backfills WHERE team_id = $1 AND status = ANY($2)",
        team_id,
        OPEN_BACKFILL_STATUSES,
    )


async def get(conn: Executor, backfill_id: uuid.UUID, export_id: uuid.UUID | None = None) -> Backfill | None:
    """The backfill (of `export_id`, when given)."""
    row = await conn.fetchrow(
        "SELECT * FROM batch_export_backfills WHERE id = $1 AND ($2::uuid IS NULL OR batch_export_id = $2)",
        backfill_id,
        export_id,
    )
    return Backfill(**dict(row)) if row else None


async def open_for_export(conn: Executor, export_id: uuid.UUID) -> list[Backfill]:
    rows = await conn.fetch(
        "SELECT * FROM batch_export_backfills WHERE batch_export_id = $1 AND status = ANY($2)",
        export_id,
        OPEN_BACKFILL_STATUSES,
    )
    return [Backfill(**dict(row)) for row in rows]


async def open_and_quiet(conn: Executor, quiet_for: timedelta) -> list[Backfill]:
    """Open backfills whose row has not moved for `quiet_for`."""
    rows = await conn.fetch(
        "SELECT * FROM batch_export_backfills WHERE status = ANY($1) AND last_updated_at < now() - $2::interval",
        OPEN_BACKFILL_STATUSES,
        quiet_for,
    )
    return [Backfill(**dict(row)) for row in rows]


async def touch(conn: Executor, backfill_id: uuid.UUID) -> None:
    await conn.execute("UPDATE batch_export_backfills SET last_updated_at = now() WHERE id = $1", backfill_id)


async def mark_running(conn: Executor, backfill_id: uuid.UUID, total_runs: int, total_records: int | None) -> None:
    """A started backfill: how many runs it has, and (an estimate of) how many records."""
    await conn.execute(
        """
        UPDATE batch_export_backfills
        SET status = $4, total_runs = $2, total_records_count = $3, last_updated_at = now()
        WHERE id = $1 AND status = $5
        """,
        backfill_id,
        total_runs,
        total_records,
        BackfillStatus.RUNNING,
        BackfillStatus.STARTING,
    )


async def finish(conn: Executor, backfill_id: uuid.UUID, status: BackfillStatus, finished_runs: int) -> None:
    await conn.execute(
        """
        UPDATE batch_export_backfills
        SET status = $2, finished_runs = $3, finished_at = now(), last_updated_at = now()
        WHERE id = $1
        """,
        backfill_id,
        status,
        finished_runs,
    )


async def close_if_open(conn: Executor, backfill_id: uuid.UUID, status: BackfillStatus) -> bool:
    """Record how a backfill ended that did not say so itself; False when it had already ended."""
    closed = await conn.execute(
        "UPDATE batch_export_backfills SET status = $2, finished_at = now(), last_updated_at = now() "
        "WHERE id = $1 AND status = ANY($3)",
        backfill_id,
        status,
        OPEN_BACKFILL_STATUSES,
    )
    return closed.endswith(" 1")


ORDERINGS = ("created_at", "-created_at", "start_at", "-start_at")


async def page(
    conn: Executor,
    export_id: uuid.UUID,
    *,
    ordering: str = "-created_at",
    limit: int,
    position: tuple[datetime, uuid.UUID] | None,
    backwards: bool,
) -> list[Backfill]:
    """A keyset page of an export's backfills in `ordering` (ties by id), or before `position` when `backwards`."""
    assert ordering in ORDERINGS
    field = ordering.lstrip("-")
    descending = ordering.startswith("-") != backwards
    direction, compare = ("DESC", "<") if descending else ("ASC", ">")
    rows = await conn.fetch(
        f"""
        SELECT * FROM batch_export_backfills
        WHERE batch_export_id = $1 AND ($2::timestamptz IS NULL OR ({field}, id) {compare} ($2, $3))
        ORDER BY {field} {direction}, id {direction} LIMIT $4
        """,
        export_id,
        position[0] if position else None,
        position[1] if position else None,
        limit,
    )
    return [Backfill(**dict(row)) for row in rows]


async def runs_left_by_export(conn: Executor) -> dict[uuid.UUID, int]:
    """For each export with open backfills: how many of their runs have not finished yet."""
    rows = await conn.fetch(
        """
        SELECT b.batch_export_id, sum(greatest(coalesce(b.total_runs, 0) - (
                   SELECT count(DISTINCT r.data_interval_end) FROM batch_export_runs r
                   WHERE r.backfill_id = b.id AND r.status = ANY($2)), 0))::bigint AS left_runs
        FROM batch_export_backfills b WHERE b.status = ANY($1) GROUP BY b.batch_export_id
        """,
        OPEN_BACKFILL_STATUSES,
        FINAL_RUN_STATUSES,
    )
    return {row["batch_export_id"]: row["left_runs"] for row in rows}
