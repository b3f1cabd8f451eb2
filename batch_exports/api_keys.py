"""Personal API keys: stored as their SHA-256, carrying scopes and the projects they may touch."""

import hashlib
import uuid
from dataclasses import dataclass

import asyncpg

READ = "batch_export:read"
WRITE = "batch_export:write"
ALL_SCOPES = (READ, WRITE)


@dataclass(frozen=True)
class ApiKey:
    id: uuid.UUID
    scopes: frozenset[str]
    project_ids: frozenset[int] | None
    """None: every project."""

    def may_access(self, project_id: int) -> bool:
        return self.project_ids is None or project_id in self.project_ids


def secure_value(key: str) -> str:
    return "sha256$" + hashlib.sha256(key.encode()).hexdigest()


def mask(key: str) -> str:
    return f"{key[:4]}...{key[-4:]}" if len(key) > 12 else "****"


async def find(conn: asyncpg.Pool, key: str) -> ApiKey | None:
    row = await conn.fetchrow(
        """
        UPDATE personal_api_keys SET last_used_at = now()
        WHERE secure_value = $1 AND revoked_at IS NULL
        RETURNING id, scopes, project_ids
        """,
        secure_value(key),
    )
    if row is None:
        return None
    projects = frozenset(row["project_ids"]) if row["project_ids"] is not None else None
    return ApiKey(id=row["id"], scopes=frozenset(row["scopes"]), project_ids=projects)


async def ensure(
    conn: asyncpg.Pool | asyncpg.Connection,
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
