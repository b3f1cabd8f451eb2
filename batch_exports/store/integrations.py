"""The `integrations` table: a project's credentials, kept once (encrypted) and named by its exports."""

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from batch_exports.crypto import ConfigCipher

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class Integration:
    id: uuid.UUID
    team_id: int
    kind: str
    display_name: str
    config: dict[str, Any]
    sensitive_config: dict[str, Any]
    created_at: datetime
    last_updated_at: datetime

    @property
    def values(self) -> dict[str, Any]:
        """Every field it fills in a destination config, secrets included."""
        return {**self.config, **self.sensitive_config}


@dataclass(frozen=True)
class User:
    """An export that names an integration."""

    id: uuid.UUID
    name: str
    destination_type: str
    config_encrypted: bytes


def sealed(cipher: ConfigCipher, config: dict[str, Any], sensitive_config: dict[str, Any]) -> bytes:
    return cipher.encrypt({"config": config, "sensitive_config": sensitive_config})


def unsealed(cipher: ConfigCipher, encrypted: bytes) -> tuple[dict[str, Any], dict[str, Any]]:
    """The readable config and the secrets of an integration's `encrypted` column."""
    both = cipher.decrypt(encrypted)
    return both["config"], both["sensitive_config"]


def _from_row(row: asyncpg.Record, cipher: ConfigCipher) -> Integration:
    values = dict(row)
    config, sensitive = unsealed(cipher, values.pop("encrypted"))
    values.pop("deleted")
    return Integration(**values, config=config, sensitive_config=sensitive)


async def insert(conn: Executor, team_id: int, kind: str, display_name: str, encrypted: bytes) -> uuid.UUID:
    integration_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO integrations (id, team_id, kind, display_name, encrypted) VALUES ($1, $2, $3, $4, $5)",
        integration_id,
        team_id,
        kind,
        display_name,
        encrypted,
    )
    return integration_id


async def get(
    conn: Executor, integration_id: uuid.UUID, team_id: int, cipher: ConfigCipher, *, lock: bool = False
) -> Integration | None:
    """The project's live integration (its row locked for the transaction with `lock`)."""
    row = await conn.fetchrow(
        "SELECT * FROM integrations WHERE id = $1 AND team_id = $2 AND NOT deleted" + (" FOR UPDATE" if lock else ""),
        integration_id,
        team_id,
    )
    return _from_row(row, cipher) if row else None


async def page(
    conn: Executor, team_id: int, cipher: ConfigCipher, *, limit: int, offset: int
) -> tuple[int, list[Integration]]:
    """One page of the project's live integrations, newest first, and how many there are."""
    count = await conn.fetchval("SELECT count(*) FROM integrations WHERE team_id = $1 AND NOT deleted", team_id)
    rows = await conn.fetch(
        "SELECT * FROM integrations WHERE team_id = $1 AND NOT deleted ORDER BY created_at DESC, id DESC "
        "LIMIT $2 OFFSET $3",
        team_id,
        limit,
        offset,
    )
    return count, [_from_row(row, cipher) for row in rows]


async def update(conn: Executor, integration_id: uuid.UUID, display_name: str, encrypted: bytes) -> None:
    await conn.execute(
        "UPDATE integrations SET display_name = $2, encrypted = $3, last_updated_at = now() WHERE id = $1",
        integration_id,
        display_name,
        encrypted,
    )


async def soft_delete(conn: Executor, integration_id: uuid.UUID) -> None:
    await conn.execute("UPDATE integrations SET deleted = true, last_updated_at = now() WHERE id = $1", integration_id)


async def users(conn: Executor, integration_id: uuid.UUID) -> list[User]:
    """The live exports that name the integration, oldest first."""
    rows = await conn.fetch(
        """
        SELECT e.id, e.name, d.type AS destination_type, d.config_encrypted
        FROM batch_export_destinations d JOIN batch_exports e ON e.destination_id = d.id
        WHERE d.integration_id = $1 AND NOT e.deleted ORDER BY e.created_at, e.id
        """,
        integration_id,
    )
    return [User(**dict(row)) for row in rows]
