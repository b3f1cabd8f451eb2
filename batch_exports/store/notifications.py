"""`notification_targets` (where a project is told about its exports) and `batch_export_notices` (what was told).

A target's address is encrypted: a Slack incoming-webhook URL is itself a credential. The API shows `display`,
the address without its secret parts.
"""

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, TypeAlias

import asyncpg

from batch_exports.crypto import ConfigCipher

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class Target:
    id: uuid.UUID
    team_id: int
    kind: str
    display: str
    config: dict[str, Any]
    created_at: datetime


def _target(row: asyncpg.Record, cipher: ConfigCipher) -> Target:
    values = dict(row)
    config = cipher.decrypt(values.pop("encrypted"))
    return Target(**values, config=config)


async def add_target(conn: Executor, team_id: int, kind: str, display: str, encrypted: bytes) -> uuid.UUID:
    target_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notification_targets (id, team_id, kind, display, encrypted) VALUES ($1, $2, $3, $4, $5)",
        target_id,
        team_id,
        kind,
        display,
        encrypted,
    )
    return target_id


async def targets(conn: Executor, team_id: int, cipher: ConfigCipher) -> list[Target]:
    rows = await conn.fetch("SELECT * FROM notification_targets WHERE team_id = $1 ORDER BY created_at, id", team_id)
    return [_target(row, cipher) for row in rows]


async def count_targets(conn: Executor, team_id: int) -> int:
    return await conn.fetchval("SELECT count(*) FROM notification_targets WHERE team_id = $1", team_id)  # type: ignore[no-any-return]


async def remove_target(conn: Executor, target_id: uuid.UUID, team_id: int) -> bool:
    removed = await conn.execute("DELETE FROM notification_targets WHERE id = $1 AND team_id = $2", target_id, team_id)
    return removed.endswith(" 1")


async def claim(conn: Executor, export_id: uuid.UUID, kind: str, day: date) -> bool:
    """Record that the notice of `kind` for the export goes out `day`; False when one did already."""
    claimed = await conn.execute(
        "INSERT INTO batch_export_notices (batch_export_id, kind, day) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        export_id,
        kind,
        day,
    )
    return claimed.endswith(" 1")


async def release(conn: Executor, export_id: uuid.UUID, kind: str, day: date) -> None:
    """Forget a claim whose notice could not be sent, so that a retry sends it."""
    await conn.execute(
        "DELETE FROM batch_export_notices WHERE batch_export_id = $1 AND kind = $2 AND day = $3", export_id, kind, day
    )


async def latest_kind(conn: Executor, export_id: uuid.UUID) -> str | None:
    """The kind of the export's latest notice (None before the first)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "SELECT kind FROM batch_export_notices WHERE batch_export_id = $1 ORDER BY sent_at DESC LIMIT 1", export_id
    )
