"""Backfills: a backfill workflow that runs every interval of a range, and its row in PostgreSQL."""

import itertools
import uuid
from datetime import UTC, date, datetime

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client

from batch_exports.exports import BatchExport
from batch_exports.models import InvalidField
from batch_exports.settings import Settings
from batch_exports.temporal import calling_temporal, cancel_workflow, search_attributes
from workflows.inputs import BACKFILL_WORKFLOW, BackfillInputs
from workflows.intervals import IntervalSpec, boundaries

OPEN_STATUSES = ("Starting", "Running")


class Backfill(BaseModel):
    id: uuid.UUID
    team_id: int
    batch_export_id: uuid.UUID
    start_at: datetime | None
    end_at: datetime | None
    status: str
    total_runs: int | None
    finished_runs: int
    total_records_count: int | None
    workflow_id: str | None
    created_at: datetime
    finished_at: datetime | None
    last_updated_at: datetime


class TooManyBackfills(Exception):
    pass


def workflow_id_for(backfill_id: uuid.UUID) -> str:
    return f"backfill-{backfill_id}"


async def start(
    conn: asyncpg.Connection,
    client: Client,
    settings: Settings,
    export: BatchExport,
    start_at: datetime,
    end_at: datetime,
    *,
    single_interval: bool = False,
) -> Backfill:
    """Record a backfill and start its workflow; call inside a transaction, which Temporal's refusal rolls back."""
    # One project's backfills are started one at a time, so two requests cannot both pass the limit.
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('backfills', $1))", export.team_id)
    running = await conn.fetchval(
        "SELECT count(*) FROM batch_export_backfills WHERE team_id = $1 AND status = ANY($2)",
        export.team_id,
        list(OPEN_STATUSES),
    )
    if running >= settings.max_running_backfills_per_project:
        raise TooManyBackfills(
            f"this project already has {running} backfills running (the limit is "
            f"{settings.max_running_backfills_per_project}); wait for one to finish or cancel one"
        )
    backfill_id = uuid.uuid4()
    workflow_id = workflow_id_for(backfill_id)
    await conn.execute(
        """
        INSERT INTO batch_export_backfills (id, team_id, batch_export_id, start_at, end_at, status, workflow_id)
        VALUES ($1, $2, $3, $4, $5, 'Starting', $6)
        """,
        backfill_id,
        export.team_id,
        export.id,
        start_at,
        end_at,
        workflow_id,
    )
    async with calling_temporal("start the backfill"):
        await _start_workflow(client, settings, export, backfill_id, workflow_id, start_at, end_at, single_interval)
    stored = await get(conn, backfill_id, export.id)
    assert stored is not None
    return stored


async def _start_workflow(
    client: Client,
    settings: Settings,
    export: BatchExport,
    backfill_id: uuid.UUID,
    workflow_id: str,
    start_at: datetime,
    end_at: datetime,
    single_interval: bool,
) -> None:
    await client.start_workflow(
        BACKFILL_WORKFLOW,
        BackfillInputs(
            backfill_id=str(backfill_id),
            batch_export_id=str(export.id),
            team_id=export.team_id,
            interval=export.interval.value,
            timezone=export.timezone,
            offset_day=export.offset_day,
            offset_hour=export.offset_hour,
            destination_type=export.destination_type.value,
            start_at=start_at,
            end_at=end_at,
            concurrency=settings.backfill_concurrency,
            run_max_attempts=settings.run_max_attempts,
            run_retry_initial_seconds=settings.run_retry_initial_seconds,
            single_interval=single_interval,
        ),
        id=workflow_id,
        task_queue=settings.task_queue,
        search_attributes=search_attributes(
            str(export.id), export.team_id, export.destination_type.value, backfill_id=str(backfill_id)
        ),
        static_summary=f"Backfill of {export.name} ({export.destination_type.value}), "
        f"{start_at.isoformat()} to {end_at.isoformat()}",
    )


async def get(conn: asyncpg.Pool | asyncpg.Connection, backfill_id: uuid.UUID, export_id: uuid.UUID) -> Backfill | None:
    row = await conn.fetchrow(
        "SELECT * FROM batch_export_backfills WHERE id = $1 AND batch_export_id = $2", backfill_id, export_id
    )
    return Backfill(**dict(row)) if row else None


async def open_for_export(conn: asyncpg.Pool | asyncpg.Connection, export_id: uuid.UUID) -> list[Backfill]:
    rows = await conn.fetch(
        "SELECT * FROM batch_export_backfills WHERE batch_export_id = $1 AND status = ANY($2)",
        export_id,
        list(OPEN_STATUSES),
    )
    return [Backfill(**dict(row)) for row in rows]


async def cancel(client: Client, backfill: Backfill) -> bool:
    """Ask the backfill workflow to stop (it cancels its runs and records `Cancelled` itself).

    False when it has already ended.
    """
    return bool(backfill.workflow_id) and await cancel_workflow(client, backfill.workflow_id or "")


async def finished_runs(conn: asyncpg.Pool | asyncpg.Connection, backfill_id: uuid.UUID) -> int:
    """Intervals of the backfill whose run has ended for good (a retried or continued run has not)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        """
        SELECT count(DISTINCT data_interval_end) FROM batch_export_runs
        WHERE backfill_id = $1 AND status IN ('Completed', 'Failed', 'Cancelled', 'Terminated', 'TimedOut')
        """,
        backfill_id,
    )


def _parse_bound(raw: object, name: str, spec: IntervalSpec) -> datetime:
    """A bound as a datetime with an offset, or, for daily and weekly exports, a date (its boundary hour)."""
    if not isinstance(raw, str) or not raw:
        raise InvalidField(name, f"{name} is required: an ISO 8601 date-time with an offset (or a date)")
    is_date = len(raw) == 10
    if is_date and not spec.interval.is_calendar:
        raise InvalidField(name, f"{name} must be a date-time; dates are for daily and weekly exports")
    try:
        value = date.fromisoformat(raw) if is_date else datetime.fromisoformat(raw.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidField(name, f"{name} is not an ISO 8601 date-time: {raw!r}") from None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise InvalidField(name, f"{name} must carry a UTC offset (for example 2024-01-01T00:00:00Z)")
        return value.astimezone(UTC)
    return datetime(value.year, value.month, value.day, spec.offset_hour or 0, tzinfo=spec.zone).astimezone(UTC)


def bounds(export: BatchExport, start_raw: object, end_raw: object, now: datetime) -> tuple[datetime, datetime]:
    """Validated backfill bounds: ordered, not in the future, holding at least one whole interval."""
    spec = export.interval_spec
    start_at, end_at = _parse_bound(start_raw, "start_at", spec), _parse_bound(end_raw, "end_at", spec)
    if start_at >= end_at:
        raise InvalidField("end_at", "end_at must be after start_at")
    if end_at > now:
        raise InvalidField("end_at", "end_at is in the future: a backfill exports intervals that have ended")
    ends = list(itertools.islice(boundaries(spec, start_at, end_at), 2))
    if len(ends) < 2:
        raise InvalidField("start_at", f"no whole {export.interval.value} interval lies between start_at and end_at")
    return start_at, end_at


async def page(
    conn: asyncpg.Pool,
    export_id: uuid.UUID,
    *,
    limit: int,
    position: tuple[datetime, uuid.UUID] | None,
    backwards: bool,
) -> list[Backfill]:
    """A keyset page of an export's backfills, newest first (oldest first when paging `backwards`)."""
    compare, direction = (">", "ASC") if backwards else ("<", "DESC")
    rows = await conn.fetch(
        f"""
        SELECT * FROM batch_export_backfills
        WHERE batch_export_id = $1 AND ($2::timestamptz IS NULL OR (created_at, id) {compare} ($2, $3))
        ORDER BY created_at {direction}, id {direction} LIMIT $4
        """,
        export_id,
        position[0] if position else None,
        position[1] if position else None,
        limit,
    )
    return [Backfill(**dict(row)) for row in rows]
