"""Backfills: a backfill workflow that runs every interval of a range, recorded as a row of its own."""

import itertools
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from temporalio.client import Client

from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import InvalidField
from batch_exports.runs.run import Backfill
from batch_exports.runtime import Runtime
from batch_exports.store import backfills, exports
from batch_exports.temporal.client import calling_temporal, cancel_workflow
from connectors.sources import open_source
from contracts.intervals import IntervalSpec, boundaries, latest_boundary
from contracts.search_attributes import search_attributes
from contracts.workflows import BACKFILL_WORKFLOW, BackfillInputs


class TooManyBackfills(Exception):
    pass


class TooManyIntervals(InvalidField):
    """A backfill over more intervals than `BATCH_EXPORTS_MAX_BACKFILL_INTERVALS`."""


async def count_records(rt: Runtime, backfill: Backfill) -> int | None:
    """How many records the backfill's range holds in the source (None when its export or range is unknown)."""
    export = await exports.get(rt.pool, backfill.batch_export_id, rt.cipher, include_deleted=True)
    if export is None or not backfill.start_at or not backfill.end_at:
        return None
    source = open_source(rt.source, export.team_id, export.model, export.selection())
    return await source.count(backfill.start_at, backfill.end_at)


def workflow_id_for(export_id: uuid.UUID, backfill_id: uuid.UUID) -> str:
    """`{export id}-backfill-{backfill id}`: an operator finds an export's backfills by its id."""
    return f"{export_id}-backfill-{backfill_id}"


async def start(
    rt: Runtime,
    conn: asyncpg.Connection,
    export: BatchExport,
    start_at: datetime,
    end_at: datetime,
    *,
    single_interval: bool = False,
    missing_only: bool = False,
) -> Backfill:
    """Record a backfill and start its workflow; call inside a transaction, which Temporal's refusal rolls back."""
    client, settings = rt.client, rt.settings
    # One project's backfills are started one at a time, so two requests cannot both pass the limit.
    await backfills.lock_team(conn, export.team_id)
    running = await backfills.count_open(conn, export.team_id)
    if running >= settings.max_running_backfills_per_project:
        raise TooManyBackfills(
            f"this project already has {running} backfills running (the limit is "
            f"{settings.max_running_backfills_per_project}); wait for one to finish or cancel one"
        )
    backfill_id = uuid.uuid4()
    workflow_id = workflow_id_for(export.id, backfill_id)
    await backfills.insert(
        conn,
        backfill_id,
        team_id=export.team_id,
        batch_export_id=export.id,
        start_at=start_at,
        end_at=end_at,
        workflow_id=workflow_id,
    )
    async with calling_temporal("start the backfill"):
        await client.start_workflow(
            BACKFILL_WORKFLOW,
            BackfillInputs(
                backfill_id=str(backfill_id),
                batch_export_id=str(export.id),
                team_id=export.team_id,
                spec=export.interval_spec,
                destination_type=export.destination_type,
                batch_export_name=export.name,
                start_at=start_at,
                end_at=end_at,
                concurrency=settings.backfill_concurrency,
                run_max_attempts=settings.run_max_attempts,
                run_retry_initial_seconds=settings.run_retry_initial_seconds,
                single_interval=single_interval,
                missing_only=missing_only,
            ),
            id=workflow_id,
            task_queue=settings.task_queue,
            search_attributes=search_attributes(
                str(export.id), export.team_id, export.destination_type, name=export.name, backfill_id=str(backfill_id)
            ),
            static_summary=f"Backfill of {export.name} ({export.destination_type}), "
            f"{start_at.isoformat()} to {end_at.isoformat()}",
        )
    stored = await backfills.get(conn, backfill_id)
    assert stored is not None
    return stored


async def cancel(client: Client, backfill: Backfill, *, reason: str) -> bool:
    """Ask the backfill workflow to stop (it cancels its runs, waits for them, and records `Cancelled` itself).

    False when it has already ended.
    """
    return bool(backfill.workflow_id) and await cancel_workflow(client, backfill.workflow_id or "", reason=reason)


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
        raise InvalidField(name, f"{name} is not an ISO 8601 date-time: {raw[:40]!r}") from None
    try:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                raise InvalidField(name, f"{name} must carry a UTC offset (for example 2024-01-01T00:00:00Z)")
            return value.astimezone(UTC)
        return datetime(value.year, value.month, value.day, spec.offset_hour or 0, tzinfo=spec.zone).astimezone(UTC)
    except OverflowError:
        raise InvalidField(name, f"{name} is out of range") from None


def bounds(
    export: BatchExport, start_raw: object, end_raw: object, now: datetime, max_intervals: int = 0
) -> tuple[datetime, datetime]:
    """Validated backfill bounds: ordered, not in the future, holding at least one whole interval and (with
    `max_intervals`) not more than that many."""
    spec = export.interval_spec
    start_at, end_at = _parse_bound(start_raw, "start_at", spec), _parse_bound(end_raw, "end_at", spec)
    return checked(export, start_at, end_at, now, max_intervals)


def checked(
    export: BatchExport, start_at: datetime, end_at: datetime, now: datetime, max_intervals: int = 0
) -> tuple[datetime, datetime]:
    """`(start_at, end_at)` if they bound a backfill (see `bounds`), else InvalidField naming the one at fault."""
    spec = export.interval_spec
    if start_at >= end_at:
        raise InvalidField("end_at", "end_at must be after start_at")
    if end_at > now:
        raise InvalidField("end_at", "end_at is in the future: a backfill exports intervals that have ended")
    if max_intervals and (about := (end_at - start_at) // export.interval.nominal) > max_intervals:
        raise TooManyIntervals(
            "start_at",
            f"the backfill would run about {about:,} {export.interval.value} intervals; a backfill may run at most "
            f"{max_intervals:,} (BATCH_EXPORTS_MAX_BACKFILL_INTERVALS): split it into several",
        )
    try:
        ends = list(itertools.islice(boundaries(spec, start_at, end_at), 2))
    except (OverflowError, ValueError):
        raise InvalidField("start_at", "start_at is out of the range of dates a backfill can run") from None
    if len(ends) < 2:
        raise InvalidField("start_at", f"no whole {export.interval.value} interval lies between start_at and end_at")
    return start_at, end_at


@dataclass(frozen=True)
class Range:
    """A backfill's bounds as a request resolved them."""

    start_at: datetime
    end_at: datetime
    start_from_data: bool
    """`start_at` was null: the range starts at the first interval holding data."""


async def resolve(rt: Runtime, export: BatchExport, body: dict[str, Any], now: datetime) -> Range:
    """The range a backfill request names, checked (size limit included) once its open ends are resolved.

    `start_at: null` is the start of the first interval holding data for the export's model and selection (one
    query on the source); `end_at: null` is the end of the last whole interval at `now`.
    """
    spec = export.interval_spec
    for name in ("start_at", "end_at"):
        if name not in body:
            raise InvalidField(
                name, f"{name} is required: an ISO 8601 date-time with an offset, a date, or null (see the README)"
            )
    start_from_data = body["start_at"] is None
    given_start = None if start_from_data else _parse_bound(body["start_at"], "start_at", spec)
    end_at = latest_boundary(spec, now) if body["end_at"] is None else _parse_bound(body["end_at"], "end_at", spec)
    if given_start is None:
        source = open_source(rt.source, export.team_id, export.model, export.selection())
        first = await source.first_at(min(end_at, now))
        if first is None:
            raise InvalidField("start_at", "start_at is null, but the export selects no data before end_at")
        given_start = latest_boundary(spec, first)
    start_at = given_start
    return Range(*checked(export, start_at, end_at, now, rt.settings.max_backfill_intervals), start_from_data)
