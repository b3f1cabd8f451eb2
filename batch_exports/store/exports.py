"""The `batch_exports` and `batch_export_destinations` tables: exports and their (encrypted) destination configs."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from batch_exports.crypto import ConfigCipher
from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import BatchExportIn
from batch_exports.store import integrations
from connectors.destinations import parse_config
from connectors.destinations.integrations import own_config
from connectors.sources.filters import STORED
from contracts.intervals import Interval, IntervalSpec
from contracts.statuses import RunStatus

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


_SELECT = """
    SELECT e.*, e.schema AS schema_, d.type AS destination_type, d.config_encrypted,
           i.encrypted AS integration_encrypted
    FROM batch_exports e JOIN batch_export_destinations d ON d.id = e.destination_id
         LEFT JOIN integrations i ON i.id = d.integration_id
"""


def _from_row(row: asyncpg.Record, cipher: ConfigCipher) -> BatchExport:
    values = dict(row)
    destination_type = values.pop("destination_type")
    stored = cipher.decrypt(values.pop("config_encrypted"))
    if (integration := values.pop("integration_encrypted")) is not None:  # its values as they are now
        readable, sensitive = integrations.unsealed(cipher, integration)
        stored = {**stored, **readable, **sensitive}
    values["destination"] = {"type": destination_type, "config": parse_config(destination_type, stored)}
    return BatchExport.model_validate(values, context=STORED)  # its filters were checked when saved


def _columns(body: BatchExportIn) -> dict[str, Any]:
    """The export's own columns as `body` sets them (one for each field but the destination; values are bound)."""
    return body.plain_fields() | {"schema": body.exported_schema()}


def _encrypted_config(body: BatchExportIn, cipher: ConfigCipher) -> bytes:
    return cipher.encrypt(own_config(body.destination.type, body.destination.parsed()))


async def insert(
    conn: asyncpg.Connection,
    team_id: int,
    body: BatchExportIn,
    cipher: ConfigCipher,
    *,
    covered_until: datetime | None = None,
) -> BatchExport:
    destination_id, export_id = uuid.uuid4(), uuid.uuid4()
    await conn.execute(
        "INSERT INTO batch_export_destinations (id, type, config_encrypted, integration_id) VALUES ($1, $2, $3, $4)",
        destination_id,
        body.destination.type,
        _encrypted_config(body, cipher),
        body.destination.parsed().integration_id,
    )
    columns = {"id": export_id, "team_id": team_id, "destination_id": destination_id, **_columns(body),
               "covered_until": covered_until, "owed_from": covered_until}  # fmt: skip
    names = ", ".join(columns)
    values = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO batch_exports ({names}) VALUES ({values})", *columns.values())
    if body.paused:
        await conn.execute("UPDATE batch_exports SET last_paused_at = now() WHERE id = $1", export_id)
    export = await get(conn, export_id, cipher, team_id=team_id)
    assert export is not None
    return export


class ExportNotFound(LookupError):
    """The export is gone (deleted meanwhile, or never there)."""


async def update(
    conn: asyncpg.Connection, export: BatchExport, body: BatchExportIn, cipher: ConfigCipher
) -> BatchExport:
    """Store `body` (a complete, validated export) over `export`; returns the stored result."""
    if not await conn.fetchval("SELECT 1 FROM batch_exports WHERE id = $1 AND NOT deleted FOR UPDATE", export.id):
        raise ExportNotFound(export.id)
    await conn.execute(
        "UPDATE batch_export_destinations SET config_encrypted = $2, integration_id = $3, last_updated_at = now() "
        "WHERE id = $1",
        export.destination_id,
        _encrypted_config(body, cipher),
        body.destination.parsed().integration_id,
    )
    if body.paused and not export.paused:
        await conn.execute("UPDATE batch_exports SET last_paused_at = now() WHERE id = $1", export.id)
    columns = _columns(body)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(columns, start=2))
    await conn.execute(
        f"UPDATE batch_exports SET {assignments}, last_updated_at = now() WHERE id = $1", export.id, *columns.values()
    )
    updated = await get(conn, export.id, cipher)
    if updated is None:
        raise ExportNotFound(export.id)
    return updated


async def set_paused(
    conn: Executor,
    export_id: uuid.UUID,
    paused: bool,
    *,
    at: datetime | None = None,
    covered_until: datetime | None = None,
) -> bool:
    """Pause or unpause (at `at`, by default now); False, and nothing changed, when it already was.

    An unpause may say up to where the paused span counts as covered (`covered_until`).
    """
    status = await conn.execute(
        """
        UPDATE batch_exports
        SET paused = $2, last_updated_at = now(),
            last_paused_at = CASE WHEN $2 THEN coalesce($3, now()) ELSE last_paused_at END,
            covered_until = coalesce($4, covered_until)
        WHERE id = $1 AND paused <> $2
        """,
        export_id,
        paused,
        at,
        covered_until,
    )
    return not status.endswith(" 0")


async def set_covered_until(conn: Executor, export_id: uuid.UUID, at: datetime, *, owed_from: bool = False) -> None:
    """Move `covered_until`; with `owed_from`, the export owes intervals only from there on (a new interval)."""
    await conn.execute(
        "UPDATE batch_exports SET covered_until = $2, owed_from = CASE WHEN $3 THEN $2 ELSE owed_from END "
        "WHERE id = $1",
        export_id,
        at,
        owed_from,
    )


async def record_pause(conn: Executor, export_id: uuid.UUID, at: datetime) -> None:
    """A pause seen after it ended (paused and unpaused outside the API between two looks): its time."""
    await conn.execute(
        "UPDATE batch_exports SET last_paused_at = greatest(last_paused_at, $2) WHERE id = $1", export_id, at
    )


async def set_schedule_state(conn: Executor, export_id: uuid.UUID, state: dict[str, Any]) -> None:
    await conn.execute("UPDATE batch_exports SET schedule_state = $2 WHERE id = $1", export_id, state)


async def get(
    conn: Executor,
    export_id: uuid.UUID,
    cipher: ConfigCipher,
    *,
    team_id: int | None = None,
    include_deleted: bool = False,
) -> BatchExport | None:
    row = await conn.fetchrow(
        f"{_SELECT} WHERE e.id = $1 AND ($2::bigint IS NULL OR e.team_id = $2) AND (NOT e.deleted OR $3)",
        export_id,
        team_id,
        include_deleted,
    )
    return _from_row(row, cipher) if row else None


async def list_page(
    conn: asyncpg.Pool, team_id: int, cipher: ConfigCipher, *, limit: int, offset: int
) -> tuple[int, list[BatchExport]]:
    """One page of a team's live exports, newest first, and how many there are in all."""
    count = await conn.fetchval("SELECT count(*) FROM batch_exports WHERE team_id = $1 AND NOT deleted", team_id)
    rows = await conn.fetch(
        f"{_SELECT} WHERE e.team_id = $1 AND NOT e.deleted ORDER BY e.created_at DESC, e.id DESC LIMIT $2 OFFSET $3",
        team_id,
        limit,
        offset,
    )
    return count, [_from_row(row, cipher) for row in rows]


async def team_of(conn: Executor, export_id: uuid.UUID, *, include_deleted: bool = True) -> int | None:
    """The project of an export (None when there is none, or it is deleted and `include_deleted` is off)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT team_id FROM batch_exports WHERE id = $1 AND (NOT deleted OR $2)", export_id, include_deleted
    )


async def live_ids(conn: Executor) -> list[uuid.UUID]:
    """Every export that is not deleted."""
    return [row["id"] for row in await conn.fetch("SELECT id FROM batch_exports WHERE NOT deleted")]


async def count_live(conn: Executor, team_id: int) -> int:
    """The project's exports that are not deleted."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT count(*) FROM batch_exports WHERE team_id = $1 AND NOT deleted", team_id
    )


async def lock_team(conn: asyncpg.Connection, team_id: int) -> None:
    """Serialise creating exports of one project until the transaction ends (so its limit holds)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('batch_exports', $1))", team_id)


async def lock(conn: asyncpg.Connection, export_id: uuid.UUID) -> asyncpg.Record | None:
    """Lock the export's row for the transaction (a delete or a pause in flight holds it); its team, `paused` and
    `deleted`, or None when there is no such export."""
    return await conn.fetchrow("SELECT team_id, paused, deleted FROM batch_exports WHERE id = $1 FOR UPDATE", export_id)


async def soft_delete(conn: Executor, export_id: uuid.UUID) -> None:
    await conn.execute("UPDATE batch_exports SET deleted = true, last_updated_at = now() WHERE id = $1", export_id)


@dataclass(frozen=True)
class Freshness:
    """How far an export has got: the end of its latest completed interval (None before the first)."""

    id: uuid.UUID
    interval: Interval
    paused: bool
    exported_until: datetime | None
    timezone: str
    offset_day: int | None
    offset_hour: int | None
    owed_from: datetime | None
    covered_until: datetime | None

    @property
    def interval_spec(self) -> IntervalSpec:
        return IntervalSpec(self.interval, self.timezone, self.offset_day, self.offset_hour)

    created_at: datetime
    start_at: datetime | None
    end_at: datetime | None


async def freshness(conn: Executor) -> list[Freshness]:
    """Every export that is not deleted, with the end of its latest completed interval."""
    rows = await conn.fetch(
        """
        SELECT e.id, e.interval, e.paused, e.created_at, e.start_at, e.end_at, e.timezone, e.offset_day,
               e.offset_hour, e.owed_from, e.covered_until,
               (SELECT r.data_interval_end FROM batch_export_runs r
                WHERE r.batch_export_id = e.id AND r.status = $1
                ORDER BY r.data_interval_start DESC LIMIT 1) AS exported_until
        FROM batch_exports e WHERE NOT e.deleted
        """,
        RunStatus.COMPLETED,
    )
    return [Freshness(**{**dict(row), "interval": Interval(row["interval"])}) for row in rows]
