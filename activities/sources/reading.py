"""Streaming a query's rows as Arrow record batches, read in native code while the caller writes.

The query runs as `COPY (...) TO STDOUT (FORMAT binary)` through the ADBC PostgreSQL driver, which
decodes the stream straight into Arrow: no Python object per row. One statement is one snapshot,
however long it streams. A thread reads ahead (a few batches at most, so memory stays flat) while
the event loop encodes and uploads what it already has.

COPY takes no bound parameters, so the query's parameters are first rendered as literals by
PostgreSQL itself (`quote_nullable` of each typed value): values from outside still never reach the
SQL as text this code wrote.
"""

import asyncio
import concurrent.futures
import re
import threading
from collections.abc import AsyncIterator, Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import asyncpg
import pyarrow as pa

from activities.columns import is_extension, uuid_strings
from batch_exports.sql import Params

READ_AHEAD_BATCHES = 4
BATCH_BYTES = 16 * 2**20
"""About how much of the stream one record batch holds (the driver's hint)."""
_TYPE_NAMES = "SELECT array_agg(format_type(oid, NULL) ORDER BY n) FROM unnest($1::oid[]) WITH ORDINALITY AS t(oid, n)"
_PARAMETER = re.compile(r"\$(\d+)(?!\d)")


@dataclass(frozen=True)
class SourceDatabase:
    pool: asyncpg.Pool
    """For counts, type checks and rendering parameters."""
    dsn: str
    """For the Arrow reader's own connection."""


@dataclass(frozen=True)
class RecordBatch:
    data: pa.RecordBatch
    """The rows, column per exported field: UUIDs as text, JSON as `arrow.json` text."""
    position: str
    """Where a read that resumes after this batch starts (a run's `cursor`)."""


async def inline_parameters(pool: asyncpg.Pool, query: str, args: Sequence[Any]) -> str:
    """`query` with each `$n` replaced by its value as a typed literal that PostgreSQL quoted.

    The query must be this code's own SQL, with every value bound: it holds no string literal
    or comment where a `$n` could hide.
    """
    if not args:
        return query
    async with pool.acquire() as conn:
        oids = [t.oid for t in (await conn.prepare(query)).get_parameters()]
        types = await conn.fetchval(_TYPE_NAMES, oids)
        quoting = ", ".join(f"quote_nullable(${i}::{t})" for i, t in enumerate(types, 1))
        literals = await conn.fetchrow(f"SELECT {quoting}", *args)
    assert literals is not None
    return _PARAMETER.sub(lambda m: f"({literals[int(m[1]) - 1]}::{types[int(m[1]) - 1]})", query)


async def stream(
    db: SourceDatabase,
    query: str,
    args: Sequence[Any],
    *,
    position: Callable[[dict[str, Any]], str],
    names: Sequence[str] | None = None,
    json: Collection[str] = (),
) -> AsyncIterator[RecordBatch]:
    """The query's rows in record batches; `names` renames the first columns and drops the rest.

    `position` gets the last row of each batch (all its columns) and says where a resumed read starts.
    The `json` columns are JSON documents the query selected as text (`::text`), which the driver
    reads for less than a `jsonb`.
    """
    sql = await inline_parameters(db.pool, query, args)

    def record_batch(data: pa.RecordBatch) -> RecordBatch:  # in the reader's thread, beside the event loop
        data = _as_exported(data, json)
        last = data.slice(data.num_rows - 1).to_pylist()[0]
        if names is not None:
            data = pa.RecordBatch.from_arrays(data.columns[: len(names)], names=list(names))
        return RecordBatch(data, position(last))

    async for batch in _read_ahead(db.dsn, sql, record_batch):
        yield batch


def _as_exported(data: pa.RecordBatch, json: Collection[str]) -> pa.RecordBatch:
    """UUIDs as text, and the `json` text columns typed `arrow.json`."""
    columns = []
    for name, column in zip(data.schema.names, data.columns, strict=True):
        if is_extension(column.type, "arrow.uuid"):
            column = uuid_strings(column)
        elif name in json:
            column = pa.ExtensionArray.from_storage(pa.json_(), column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, names=data.schema.names)


async def _read_ahead(
    dsn: str, sql: str, convert: Callable[[pa.RecordBatch], RecordBatch]
) -> AsyncIterator[RecordBatch]:
    """`sql`'s non-empty record batches, read and converted ahead by a thread; stopping early cancels the query."""
    loop = asyncio.get_running_loop()
    handed: asyncio.Queue[RecordBatch | BaseException | None] = asyncio.Queue(READ_AHEAD_BATCHES)
    stop = threading.Event()

    def hand(item: RecordBatch | BaseException | None) -> bool:
        """Give the loop one item, waiting for room; False once the reader is no longer wanted."""
        delivery = asyncio.run_coroutine_threadsafe(handed.put(item), loop)
        while not stop.is_set():
            try:
                delivery.result(timeout=0.5)
                return True
            except concurrent.futures.TimeoutError:
                continue
        delivery.cancel()
        return False

    def read() -> None:
        try:
            with adbc.connect(dsn) as conn, conn.cursor() as cursor:
                cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
                cursor.execute(sql)
                for data in cursor.fetch_record_batch():
                    if data.num_rows and not hand(convert(data)):
                        cursor.adbc_cancel()
                        return
            hand(None)
        except BaseException as error:  # handed to the loop, which raises it in the reading task
            hand(error)

    # Its own thread, not the loop's executor: a reader waits on the loop, which may wait on the executor.
    threading.Thread(target=read, name="arrow-reader", daemon=True).start()
    try:
        while (item := await handed.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


__all__ = ["Params", "RecordBatch", "SourceDatabase", "inline_parameters", "stream"]
