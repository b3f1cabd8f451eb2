"""Redshift for the tests: a database of the tests' own PostgreSQL per test, with Redshift's `SUPER` type and
`JSON_PARSE` function (`entrypoints.redshift`), owned by a user of its own whose name and password are secrets no
error may show."""

import json
import uuid
from typing import Any

import asyncpg

from entrypoints.redshift import RedshiftDatabase, make
from tests.support.destinations import Target
from tests.support.stack import Project


async def redshift_database(project: Project, **fields: Any) -> RedshiftDatabase:
    """A fresh database for this test; `fields` change the config (`properties_data_type`, `table_name`...)."""
    suffix = uuid.uuid4().hex[:8]
    made = await make(project.stack.settings.database_url, f"redshift_{project.id}_{suffix}",
                      f"rs_{suffix}", f"pw-{uuid.uuid4().hex}")  # fmt: skip
    return RedshiftDatabase({**made.config, **fields}, made.url)


async def rows(database: RedshiftDatabase, sql: str, *args: Any) -> list[dict[str, Any]]:
    """What a query of the database answers, SUPER values parsed (the client reads them as JSON text)."""
    conn = await asyncpg.connect(database.url)
    try:
        await conn.set_type_codec("jsonb", encoder=json.dumps, decoder=json.loads, schema="pg_catalog")
        return [dict(row) for row in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


class RedshiftTarget(Target):
    type = "Redshift"
    checkpoints = False

    async def config(self) -> dict[str, Any]:
        self.database = await redshift_database(self.project)
        return self.database.config

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "password": "wrong-password"}, "password authentication failed"

    async def held(self, config: dict[str, Any]) -> list[str]:
        table = f"{config['schema']}.{config['table_name']}"
        found = await rows(self.database, "SELECT to_regclass($1) IS NOT NULL AS found", table)
        if not found[0]["found"]:
            return []
        return [row["uuid"] for row in await rows(self.database, f"SELECT uuid FROM {table}")]
