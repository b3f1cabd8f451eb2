"""The `personal_api_keys` table: keys stored as their SHA-256, carrying scopes and the projects they may touch."""

import hashlib
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import TypeAlias

import asyncpg

READ = "batch_export:read"
WRITE = "batch_export:write"
INTEGRATION_READ = "integration:read"
INTEGRATION_WRITE = "integration:write"
ALL_SCOPES = (READ, WRITE, INTEGRATION_READ, INTEGRATION_WRITE)

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    scopes: frozenset[str]
    project_ids: frozenset[int] | None
    """None: every project."""

    def may_access(self, project_id: int) -> bool:
        return self.project_ids is None or project_id in self.project_ids

    def may_use(self, scope: str) -> bool:
        """Whether the key holds `scope`; `x:write` implies `x:read`, as in PostHog (a change answers with what it
        changed, so a key that may change an export may see it)."""
        return scope in self.scopes or (scope.endswith(":read") and scope.replace(":read", ":write") in self.scopes)


@dataclass(frozen=True)
class StoredKey:
    """A key as an operator lists it: never its value."""

    id: uuid.UUID
    label: str
    mask_value: str
    scopes: list[str]
    project_ids: list[int] | None
    revoked_at: datetime | None


def secure_value(key: str) -> str:
    return "sha256$" + hashlib.sha256(key.encode()).hexdigest()


def mask(key: str) -> str:
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


USE_NOTED_EVERY_SECONDS = 60
USE_NOTED_EVERY = f"{USE_NOTED_EVERY_SECONDS} seconds"
"""`last_used_at` moves at most this often: a key's every use would otherwise be a write (a commit, a WAL flush
and a lock on the key's row, for which the requests of one key queue), the gateway's only one on a read."""


async def find(conn: Executor, key: str, project_id: int) -> tuple[ApiKey | None, bool]:
    """The active key whose value is `key` (noting that it was used, when it was not noted within
    `USE_NOTED_EVERY`), and whether project `project_id` exists: one statement, which writes only to note.

    A request that finds the key's row locked (another is noting it, and holds the lock until its commit is
    flushed) leaves the noting to that one and goes on: every request of the key once waited for that flush."""
    row = await conn.fetchrow(
        f"""
        WITH found AS (
            SELECT id, scopes, project_ids FROM personal_api_keys WHERE secure_value = $1 AND revoked_at IS NULL
        ), due AS (
            SELECT k.id FROM personal_api_keys AS k JOIN found USING (id)
            WHERE k.last_used_at IS NULL OR k.last_used_at < now() - interval '{USE_NOTED_EVERY}'
            FOR UPDATE OF k SKIP LOCKED
        ), noted AS (
            UPDATE personal_api_keys AS k SET last_used_at = now() FROM due WHERE k.id = due.id
        )
        SELECT found.*, EXISTS (SELECT 1 FROM projects WHERE id = $2) AS project_exists
        FROM (SELECT 1) AS one LEFT JOIN found ON true
        """,
        secure_value(key),
        project_id,
    )
    assert row is not None
    if row["id"] is None:
        return None, row["project_exists"]
    projects = frozenset(row["project_ids"]) if row["project_ids"] is not None else None
    return ApiKey(id=row["id"], scopes=frozenset(row["scopes"]), project_ids=projects), row["project_exists"]


async def ensure(
    conn: Executor,
    key: str,
    *,
    label: str,
    scopes: tuple[str, ...] = ALL_SCOPES,
    project_ids: list[int] | None = None,
) -> None:
    """Store `key` (hashed) unless it is stored already."""
    await conn.execute(
        """
        INSERT INTO personal_api_keys (id, label, secure_value, mask_value, scopes, project_ids)
        VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (secure_value) DO NOTHING
        """,
        uuid.uuid4(),
        label,
        secure_value(key),
        mask(key),
        list(scopes),
        project_ids,
    )


async def create(conn: Executor, label: str, scopes: tuple[str, ...], project_ids: list[int] | None) -> str:
    """A new random key, stored hashed; its value is returned once and never again."""
    key = "phx_" + secrets.token_urlsafe(32)
    await ensure(conn, key, label=label, scopes=scopes, project_ids=project_ids)
    return key


async def all_keys(conn: Executor) -> list[StoredKey]:
    rows = await conn.fetch(
        "SELECT id, label, mask_value, scopes, project_ids, revoked_at FROM personal_api_keys ORDER BY created_at"
    )
    return [StoredKey(**dict(row)) for row in rows]


async def revoke(conn: Executor, key_id: uuid.UUID) -> bool:
    """Revoke an active key; False when there is none with that id."""
    revoked = await conn.execute(
        "UPDATE personal_api_keys SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", key_id
    )
    return not revoked.endswith(" 0")
