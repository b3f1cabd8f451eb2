"""Idempotent first-start data: the default project and a personal API key for it."""

import asyncpg

from batch_exports import api_keys

DEFAULT_PROJECT_ID = 1


async def ensure_project(conn: asyncpg.Pool, project_id: int, name: str, token: str) -> None:
    await conn.execute(
        "INSERT INTO projects (id, name, api_token) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO UPDATE SET api_token = EXCLUDED.api_token",
        project_id,
        name,
        token,
    )


async def ensure_default_project(conn: asyncpg.Pool, token: str, api_key: str) -> None:
    await ensure_project(conn, DEFAULT_PROJECT_ID, "Default project", token)
    await api_keys.ensure(conn, api_key, label="make dev")
