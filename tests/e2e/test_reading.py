"""The Arrow reader: its parameters, rendered as literals by PostgreSQL, mean what the bound values meant; its
batches are as large as asked, each with the position of its last row."""

import asyncio
import contextlib
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest

from connectors.sources.read_ahead import WATCH_EVERY_SECONDS
from connectors.sources.reading import (
    BatchSize,
    SourceDatabase,
    SourceLost,
    inline_parameters,
    stream,
)
from tests.support.stack import Stack

HOSTILE = [
    "it's",
    "back\\slash\\",
    "$1 and $2",
    "'; DROP TABLE events; --",
    "ünïcode ✓ 𝄞",
    "line\nbreak\ttab",
    "",
    None,
]


@pytest.mark.parametrize("value", HOSTILE)
async def test_text_literals_mean_the_bound_text(stack: Stack, value: str | None) -> None:
    query = "SELECT $1::text AS a, $1::text = $2::text AS same, $3::text[] AS many"
    args: list[Any] = [value, value, [value, "x"]]
    inlined = await inline_parameters(stack.pool, query, args)
    assert await stack.pool.fetchrow(inlined) == await stack.pool.fetchrow(query, *args)


async def test_other_types_round_trip(stack: Stack) -> None:
    query = "SELECT $1::timestamptz, $2::bigint, $3::float8, $4::uuid, $5::interval, $6::boolean, $7::int8 + $2"
    args = [
        datetime(2026, 3, 29, 1, 30, 0, 123456, tzinfo=UTC),
        2**62,
        0.1 + 0.2,
        uuid.uuid4(),
        timedelta(hours=-5),
        True,
        1,
    ]
    inlined = await inline_parameters(stack.pool, query, args)
    assert await stack.pool.fetchrow(inlined) == await stack.pool.fetchrow(query, *args)


async def test_a_query_without_parameters_is_left_alone(stack: Stack) -> None:
    assert await inline_parameters(stack.pool, "SELECT '$1'", []) == "SELECT '$1'"


async def test_literals_do_not_depend_on_the_sessions_date_style(stack: Stack) -> None:
    query = "SELECT $1::timestamptz, $2::date, $3::interval"
    args = [datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), datetime(2026, 1, 2).date(), timedelta(days=1, hours=2)]
    settings = {"DateStyle": "SQL, DMY", "IntervalStyle": "sql_standard", "TimeZone": "Asia/Kolkata"}
    dsn = stack.settings.database_url
    async with asyncpg.create_pool(dsn, min_size=1, max_size=1, server_settings=settings) as elsewhere:
        inlined = await inline_parameters(elsewhere, query, args)
    assert await stack.pool.fetchrow(inlined) == await stack.pool.fetchrow(query, *args)


async def test_batches_of_a_size_asked_for_each_end_at_their_position(stack: Stack) -> None:
    query = "SELECT i, repeat('x', 1000) AS padding FROM generate_series(1, $1::int) AS i ORDER BY i"
    db = SourceDatabase(stack.pool, stack.settings.database_url)
    read = stream(db, query, [20_000], position=lambda row: str(row["i"]), size=BatchSize(bytes=2**20))
    batches = [b async for b in read]
    numbers = [n for b in batches for n in b.data.column("i").to_pylist()]
    assert numbers == list(range(1, 20_001))  # each row once, in order
    assert len(batches) >= 18 and all(b.data.nbytes <= 1.1 * 2**20 for b in batches)  # ~20 MB in ~1 MiB batches
    assert [b.position for b in batches] == [str(b.data.column("i")[-1].as_py()) for b in batches]


async def test_batches_of_at_most_the_rows_asked_for(stack: Stack) -> None:
    query = "SELECT i FROM generate_series(1, $1::int) AS i ORDER BY i"
    db = SourceDatabase(stack.pool, stack.settings.database_url)
    read = stream(db, query, [5_000], position=lambda row: str(row["i"]), size=BatchSize(rows=500))
    batches = [b async for b in read]
    assert [n for b in batches for n in b.data.column("i").to_pylist()] == list(range(1, 5_001))
    assert max(b.data.num_rows for b in batches) == 500 and len(batches) == 10
    assert [b.position for b in batches] == [str(500 * (k + 1)) for k in range(10)]


async def test_a_read_cut_while_the_caller_waits_ends_the_wait(stack: Stack) -> None:
    """The reader holds batches ahead and does not read while the caller is slow; when the source ends the read's
    connection (here: terminated; a restart does the same) the caller's wait still ends within seconds."""
    query = "SELECT i, repeat('x', 1000) AS padding FROM generate_series(1, $1::int) AS i"
    db = SourceDatabase(stack.pool, stack.settings.database_url)
    read = stream(db, query, [200_000], position=lambda row: str(row["i"]), size=BatchSize(bytes=2**20))
    async with contextlib.aclosing(read) as batches:
        async for _ in batches:
            await asyncio.sleep(0.5)  # the reader fills its queue and waits for room
            ended = await stack.pool.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'COPY (SELECT i, repeat%'"
            )
            assert ended
            began = time.monotonic()
            with pytest.raises(SourceLost, match="ended the read's connection"):
                await batches.guard(asyncio.sleep(60))  # a slow destination
            assert time.monotonic() - began < 2 * WATCH_EVERY_SECONDS + 1
            break
