"""Snowflake for the tests: one fakesnow server per session (per xdist worker: a free port, a directory of the
session's own), the stack pointed at it, and what a table holds, read back with the official connector."""

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import snowflake.connector

from entrypoints.embedded import LOOPBACK, free_port
from entrypoints.snowflake import Fakesnow, destination_config
from tests.support.stack import Stack


@pytest.fixture(scope="session")
def fakesnow(work_dir: Path) -> Iterator[Fakesnow]:
    with Fakesnow(work_dir / "fakesnow", free_port()).start() as server:
        yield server


@pytest.fixture
async def snowflake_stack(stack: Stack, fakesnow: Fakesnow) -> AsyncIterator[Stack]:
    """The stack, its worker and gateway connecting their Snowflake destinations to fakesnow (the setting is read
    each time a destination is given its context)."""
    stack.settings.snowflake_url = fakesnow.url
    yield stack


def new_config(**fields: Any) -> dict[str, Any]:
    """A config of a database of its own (fakesnow creates it on first login)."""
    return {**destination_config(), "database": f"DB_{uuid.uuid4().hex[:8].upper()}", **fields}


def _query(server: Fakesnow, config: dict[str, Any], statement: str) -> tuple[list[tuple[Any, ...]], list[Any]]:
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
    rows, _ = await asyncio.to_thread(_query, server, config, statement)
    return rows


async def table_rows(server: Fakesnow, config: dict[str, Any], table: str | None = None) -> list[dict[str, Any]]:
    """Every row of the table, by column name; none when it does not exist."""
    name = table or config["table_name"]
    try:
        rows, description = await asyncio.to_thread(_query, server, config, f'SELECT * FROM "{name}"')
    except snowflake.connector.errors.ProgrammingError as error:
        if error.errno == 2003:
            return []
        raise
    names = [column.name for column in description]
    return [dict(zip(names, row, strict=True)) for row in rows]
