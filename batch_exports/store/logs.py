"""The `batch_export_logs` table: log entries of exports and runs, written by the activities, served by the API."""

import uuid
from datetime import datetime
from enum import StrEnum

import asyncpg
from pydantic import BaseModel

from connectors.sources.params import like_containing

COLUMNS = "team_id, batch_export_id, run_id, workflow_run_id, level, message"
"""What an entry is written with, in this order (a statement that logs beside its own work lists them too)."""


class Level(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"


async def write(
    conn: asyncpg.Pool | asyncpg.Connection,
    *,
    team_id: int,
    batch_export_id: uuid.UUID,
    level: Level,
    message: str,
    run_id: uuid.UUID | None = None,
    workflow_run_id: str | None = None,
) -> None:
    await conn.execute(
        f"INSERT INTO batch_export_logs ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6)",
        team_id,
        batch_export_id,
        run_id,
        workflow_run_id,
        level.value,
        message,
    )


class Entry(BaseModel):
    timestamp: datetime
    level: Level
    message: str
    instance_id: str | None
    log_source_id: uuid.UUID


async def search(
    conn: asyncpg.Pool,
    *,
    batch_export_id: uuid.UUID,
    run_id: uuid.UUID | None = None,
    limit: int = 100,
    after: datetime | None = None,
    before: datetime | None = None,
    levels: tuple[Level, ...] = (),
    text: str | None = None,
    instance_id: str | None = None,
) -> list[Entry]:
    """An export's (or one run's, or one execution's: `instance_id`) log entries, newest first."""
    rows = await conn.fetch(
        """
        SELECT timestamp, level, message, workflow_run_id AS instance_id, batch_export_id AS log_source_id
        FROM batch_export_logs
        WHERE batch_export_id = $1 AND ($2::uuid IS NULL OR run_id = $2)
          AND ($3::timestamptz IS NULL OR timestamp > $3) AND ($4::timestamptz IS NULL OR timestamp < $4)
          AND (cardinality($5::text[]) = 0 OR level = ANY($5))
          AND ($6::text IS NULL OR message ILIKE $6)
          AND ($8::text IS NULL OR workflow_run_id = $8)
        ORDER BY timestamp DESC, id DESC LIMIT $7
        """,
        batch_export_id,
        run_id,
        after,
        before,
        [level.value for level in levels],
        like_containing(text) if text else None,
        limit,
        instance_id,
    )
    return [Entry(**dict(row)) for row in rows]
