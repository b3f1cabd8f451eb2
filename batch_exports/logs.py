"""Log entries of exports and runs, written by the activities and served by the logs routes."""

import uuid
from enum import StrEnum

import asyncpg


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
        """
        INSERT INTO batch_export_logs (team_id, batch_export_id, run_id, workflow_run_id, level, message)
        VALUES ($1, $2, $3, $4, $5, $6)
        """,
        team_id,
        batch_export_id,
        run_id,
        workflow_run_id,
        level.value,
        message,
    )
