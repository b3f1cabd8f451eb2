"""PostgreSQL access: one asyncpg pool per process, and the schema migrations (yoyo)."""

import json
from pathlib import Path
from typing import Any

import asyncpg
from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).parent / "migrations"


async def init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections read and write json/jsonb as Python objects."""
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 10)
    pool = await asyncpg.create_pool(dsn, init=init_connection, **kwargs)
    assert pool is not None
    return pool


def migrate(dsn: str) -> list[str]:
    """Apply every pending migration (under yoyo's lock, so concurrent starters are safe).

    Returns the ids of the migrations applied.
    """
    backend = get_backend(_yoyo_url(dsn))
    migrations = read_migrations(str(MIGRATIONS))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    return [m.id for m in pending]


def _yoyo_url(dsn: str) -> str:
    scheme, _, rest = dsn.partition("://")
    if scheme not in ("postgres", "postgresql"):
        raise ValueError(f"expected a postgresql:// URL, got {scheme}://")
    return f"postgresql+psycopg://{rest}"
