"""Snowflake for the tests: one fakesnow server per session (per xdist worker: a free port, a directory of the
session's own), the stack pointed at it, and what a table holds, read back with the official connector."""

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from connectors.destinations.warehouses.staging import STAGE_PREFIX
from entrypoints.embedded import LOOPBACK, free_port
from entrypoints.snowflake import Fakesnow, destination_config
from tests.support.destinations import Target
from tests.support.stack import Project, Stack


@pytest.fixture(scope="session")
def fakesnow(work_dir: Path) -> Iterator[Fakesnow]:
    with Fakesnow(work_dir / "fakesnow", free_port()).start() as server:
        yield server


@pytest.fixture
def snowflake_stack(stack: Stack, fakesnow: Fakesnow) -> Stack:
    """The stack, its worker and gateway connecting their Snowflake destinations to fakesnow (the setting is read
    each time a destination is given its context)."""
    stack.settings.snowflake_url = fakesnow.url
    return stack


def new_config(**fields: Any) -> dict[str, Any]:
    """A config of a database of its own (fakesnow creates it on first login)."""
    return {**destination_config(), "database": f"DB_{uuid.uuid4().hex[:8].upper()}", **fields}


def run_query(server: Fakesnow, config: dict[str, Any], statement: str) -> tuple[list[tuple[Any, ...]], list[Any]]:
    conn = snowflake.connector.connect(
        account=config["account"], user=config["user"], password="reader", host=LOOPBACK, port=server.port,
        protocol="http", database=config["database"], schema=config["schema"], warehouse=config["warehouse"],
        disable_ocsp_checks=True, platform_detection_timeout_seconds=0.0, login_timeout=30, network_timeout=60,
        session_parameters={"CLIENT_TELEMETRY_ENABLED": False},
    )  # fmt: skip
    try:
        with conn.cursor() as cursor:
            cursor.execute(statement)
            return cursor.fetchall(), list(cursor.description or [])
    finally:
        conn.close()


async def query(server: Fakesnow, config: dict[str, Any], statement: str) -> list[tuple[Any, ...]]:
    rows, _ = await asyncio.to_thread(run_query, server, config, statement)
    return rows


async def table_rows(server: Fakesnow, config: dict[str, Any], table: str | None = None) -> list[dict[str, Any]]:
    """Every row of the table, by column name; none when it does not exist."""
    name = table or config["table_name"]
    try:
        rows, description = await asyncio.to_thread(run_query, server, config, f'SELECT * FROM "{name}"')
    except snowflake.connector.errors.ProgrammingError as error:
        if error.errno == 2003:
            return []
        raise
    names = [column.name for column in description]
    return [dict(zip(names, row, strict=True)) for row in rows]


async def stage_tables(server: Fakesnow, config: dict[str, Any]) -> list[str]:
    """The stage tables in the config's schema (every attempt's, of every run)."""
    statement = (
        f"SELECT TABLE_NAME FROM INFORMATION_SCHEMA.TABLES WHERE STARTSWITH(TABLE_NAME, '{STAGE_PREFIX.upper()}')"
    )
    return [row[0] for row in await query(server, config, statement)]


class SnowflakeTarget(Target):
    """The contract suite's Snowflake: a database of its own on fakesnow."""

    type = "Snowflake"
    checkpoints = False

    def __init__(self, project: Project, server: Fakesnow) -> None:
        super().__init__(project)
        self.server = server

    async def config(self) -> dict[str, Any]:
        return new_config(password=f"pw-{uuid.uuid4().hex}")

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The table is a view (of a table without the export's columns): Snowflake refuses to change it."""
        run_query(self.server, config, 'CREATE TABLE "base" ("a" STRING)')
        run_query(self.server, config, 'CREATE VIEW "a_view" AS SELECT * FROM "base"')
        return {**config, "table_name": "a_view"}, "Can only modify view"

    async def held(self, config: dict[str, Any]) -> list[str]:
        return [row["uuid"] for row in await table_rows(self.server, config)]

    def secrets(self, config: dict[str, Any]) -> list[str]:
        return [config[name] for name in ("password", "private_key", "private_key_passphrase") if config.get(name)]
