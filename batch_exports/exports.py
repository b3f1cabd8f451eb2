"""Batch exports and their destinations as stored in PostgreSQL."""

import uuid
from datetime import datetime
from typing import Any

import asyncpg
from pydantic import BaseModel

from batch_exports.crypto import ConfigCipher
from batch_exports.destination_configs import DestinationConfig, DestinationType, parse_config
from batch_exports.models import BatchExportIn
from workflows.intervals import Interval


class BatchExport(BaseModel):
    id: uuid.UUID
    team_id: int
    name: str
    model: str
    destination_id: uuid.UUID
    destination_type: DestinationType
    destination_config: DestinationConfig
    interval: Interval
    paused: bool
    deleted: bool
    start_at: datetime | None
    end_at: datetime | None
    timezone: str
    offset_day: int | None
    offset_hour: int | None
    hogql_query: str | None
    filters: list[dict[str, Any]] | None
    schema_: dict[str, Any] | None
    created_at: datetime
    last_updated_at: datetime
    last_paused_at: datetime | None


_SELECT = """
    SELECT e.*, e.schema AS schema_, d.type AS destination_type, d.config_encrypted
    FROM batch_exports e JOIN batch_export_destinations d ON d.id = e.destination_id
"""


def _from_row(row: asyncpg.Record, cipher: ConfigCipher) -> BatchExport:
    values = dict(row)
    destination_type = DestinationType(values.pop("destination_type"))
    config = parse_config(destination_type, cipher.decrypt(values.pop("config_encrypted")))
    return BatchExport(**values, destination_type=destination_type, destination_config=config)


async def insert(conn: asyncpg.Connection, team_id: int, body: BatchExportIn, cipher: ConfigCipher) -> BatchExport:
    destination_id, export_id = uuid.uuid4(), uuid.uuid4()
    config = body.destination.parsed()
    await conn.execute(
        "INSERT INTO batch_export_destinations (id, type, config_encrypted) VALUES ($1, $2, $3)",
        destination_id,
        body.destination.type.value,
        cipher.encrypt(config.model_dump(mode="json")),
    )
    await conn.execute(
        """
        INSERT INTO batch_exports (id, team_id, name, model, destination_id, interval, paused, start_at, end_at,
                                   timezone, offset_day, offset_hour, last_paused_at)
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, CASE WHEN $7 THEN now() END)
        """,
        export_id,
        team_id,
        body.name,
        body.model,
        destination_id,
        body.interval.value,
        body.paused,
        body.start_at,
        body.end_at,
        body.timezone,
        body.offset_day,
        body.offset_hour,
    )
    export = await get(conn, export_id, cipher, team_id=team_id)
    assert export is not None
    return export


async def get(
    conn: asyncpg.Connection | asyncpg.Pool,
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
