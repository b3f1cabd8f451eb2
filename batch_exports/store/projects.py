"""The `projects` table: a project (team) and its capture token."""

from typing import TypeAlias

import asyncpg

Executor: TypeAlias = asyncpg.Pool | asyncpg.Connection


async def ensure(conn: Executor, project_id: int, name: str, token: str) -> None:
    """Create the project, or give it `token`."""
    await conn.execute(
        "INSERT INTO projects (id, name, api_token) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO UPDATE SET api_token = EXCLUDED.api_token",
        project_id,
        name,
        token,
    )


async def exists(conn: Executor, project_id: int) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM projects WHERE id = $1", project_id))


async def for_token(conn: Executor, token: str) -> int | None:
    """The project a capture token belongs to."""
    return await conn.fetchval("SELECT id FROM projects WHERE api_token = $1", token)  # type: ignore[no-any-return]


async def token_of(conn: Executor, project_id: int) -> str | None:
    return await conn.fetchval("SELECT api_token FROM projects WHERE id = $1", project_id)  # type: ignore[no-any-return]


async def next_id(conn: Executor) -> int:
    """An id no project has yet."""
    return await conn.fetchval("SELECT coalesce(max(id), 0) + 1 FROM projects")  # type: ignore[no-any-return]


async def all_projects(conn: Executor) -> list[tuple[int, str]]:
    """Every project's id and name, by id."""
    return [(row["id"], row["name"]) for row in await conn.fetch("SELECT id, name FROM projects ORDER BY id")]
