"""Redshift on loopback: a database of the PostgreSQL `make dev` runs, made to take what the `Redshift` destination
sends, as PostHog's own Redshift tests do: a `SUPER` type (a domain over jsonb) and a `JSON_PARSE` function.

The test suite makes one per test (`tests/support/redshift.py`); `make redshift` makes (or refreshes) the database
`redshift_dev` beside a running `make dev`, owned by the user `redshift_dev` with a new password, and prints the
config of a `Redshift` destination that writes there.
"""

import asyncio
import json
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import asyncpg

from batch_exports.settings import get_settings
from entrypoints import stack_env

AS_REDSHIFT = (
    "CREATE DOMAIN super AS jsonb",
    "CREATE FUNCTION json_parse(varchar) RETURNS super LANGUAGE sql IMMUTABLE STRICT AS $$ SELECT $1::jsonb $$",
)
"""What makes a PostgreSQL database take Redshift's SUPER columns and JSON_PARSE calls."""


@dataclass(frozen=True)
class RedshiftDatabase:
    config: dict[str, Any]
    """A `Redshift` destination config that writes there (user and password included)."""
    url: str
    """A superuser's URL of the database, to read what arrived."""


async def make(
    admin_url: str, name: str, user: str, password: str, schema: str = "posthog_exports"
) -> RedshiftDatabase:
    """Create the database `name` owned by `user` (who gets `password`), with SUPER, JSON_PARSE and `schema`;
    names are the caller's own identifiers."""
    admin = await asyncpg.connect(admin_url)
    try:
        if not await admin.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", user):
            await admin.execute(f'CREATE USER "{user}"')
        await admin.execute(f"ALTER USER \"{user}\" PASSWORD '{password}'")
        if not await admin.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await admin.execute(f'CREATE DATABASE "{name}" OWNER "{user}"')
    finally:
        await admin.close()
    url = urlparse(admin_url)._replace(path=f"/{name}").geturl()
    conn = await asyncpg.connect(url)
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_type WHERE typname = 'super'"):
            for statement in AS_REDSHIFT:
                await conn.execute(statement)
        await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}" AUTHORIZATION "{user}"')
    finally:
        await conn.close()
    parsed = urlparse(admin_url)
    config = {"host": parsed.hostname, "port": parsed.port, "database": name, "schema": schema,
              "table_name": "events", "user": user, "password": password}  # fmt: skip
    return RedshiftDatabase(config, url)


async def _main() -> None:
    conn = await stack_env.connect_database()  # exits saying how to start the stack when nothing answers
    await conn.close()
    admin_url = get_settings().database_url
    database = await make(admin_url, "redshift_dev", "redshift_dev", f"pw-{secrets.token_hex(12)}")
    where = stack_env.without_password(database.url)
    print(f"Redshift here is PostgreSQL with SUPER and JSON_PARSE, the database {where}; a Redshift config for it:")
    print(json.dumps(database.config))


def main() -> None:
    asyncio.run(_main())


if __name__ == "__main__":
    main()
