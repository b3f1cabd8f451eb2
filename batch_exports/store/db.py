"""PostgreSQL access: one asyncpg pool per process, and the schema migrations (yoyo).

A database that cannot be reached (down, restarting, cut off) shows as one of `UNAVAILABLE`, never as a
bare socket error: callers tell an outage from a fault of their own.
"""

import json
from pathlib import Path
from typing import Any

import asyncpg
from yoyo import get_backend, read_migrations

MIGRATIONS = Path(__file__).parent / "migrations"


class DatabaseUnavailable(ConnectionError):
    """PostgreSQL could not be reached: the connection was refused, timed out or failed."""


UNAVAILABLE: tuple[type[Exception], ...] = (
    DatabaseUnavailable,
    asyncpg.PostgresConnectionError,  # includes a connection lost in the middle of a query
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.TooManyConnectionsError,
)
"""The errors that say the database is unavailable (as opposed to a statement that failed)."""


async def _connect(*args: Any, **kwargs: Any) -> asyncpg.Connection:
    try:
        return await asyncpg.connect(*args, **kwargs)
    except OSError as error:  # refused, unreachable, timed out
        raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {type(error).__name__}: {error}") from error


async def init_connection(conn: asyncpg.Connection) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(type_name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


SERVER_SETTINGS = {"plan_cache_mode": "force_custom_plan"}
"""Every statement is planned for the values it is given. A connection lives long and keeps its prepared
statements (and PostgreSQL its foreign-key checks); left to itself, PostgreSQL switches such a statement to
one generic plan after a few runs, made from the statistics of that moment. Planned while `persons` held a
hundred rows, the capture's lookup of a batch's distinct ids scanned the table: a later batch of 30,000 new
users took 53 s on that connection instead of 1.6 s. The service's statements take arrays of any length and
team ids of any size, where one plan does not fit all; planning costs tens of microseconds a statement."""


async def _keep_session(conn: asyncpg.Connection) -> None:
    """A connection goes back to the pool as it is (asyncpg has rolled back a transaction left open by then).

    asyncpg's own reset sends `SELECT pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` at every
    release: one more round trip and statement each time the pool lends a connection, which for a gateway
    request that makes three lookups and a query was half its statements. The service leaves nothing in a
    session to reset: its advisory locks are transaction locks, its settings `SET LOCAL` or `set_config(...,
    true)`, its cursors live inside transactions, and it listens for nothing."""


async def create_pool(dsn: str, **kwargs: Any) -> asyncpg.Pool:
    """A pool whose connections read and write json/jsonb as Python objects, plan each statement anew, and go
    back to the pool without a reset statement (`_keep_session`)."""
    kwargs.setdefault("min_size", 1)
    kwargs.setdefault("max_size", 10)
    kwargs.setdefault("connect", _connect)
    kwargs.setdefault("reset", _keep_session)
    kwargs["server_settings"] = {**SERVER_SETTINGS, **kwargs.get("server_settings", {})}
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
