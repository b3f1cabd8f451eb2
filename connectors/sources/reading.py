"""Streaming a query's rows as Arrow record batches, read in native code while the caller writes.

The query runs as `COPY (...) TO STDOUT (FORMAT binary)` through the ADBC PostgreSQL driver, which
decodes the stream straight into Arrow: no Python object per row. One statement is one snapshot,
however long it streams. A thread reads ahead (a few batches at most, so memory stays flat) while
the event loop encodes and uploads what it already has.

A read that breaks off (the source restarted, say) ends the work waiting on it at once: the reader's error
is raised in `RecordStream.guard`, which the caller wraps around each write. While the caller is slow (a
destination taking its time) the thread waits with batches in hand and does not touch its connection, so a
watchdog asks the source every few seconds whether the read's server process is still there.

COPY takes no bound parameters, so the query's parameters are first rendered as literals by
PostgreSQL itself (`quote_nullable` of each typed value): values from outside still never reach the
SQL as text this code wrote.
"""

import asyncio
import contextlib
import re
import threading
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Collection, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import adbc_driver_postgresql.dbapi as adbc
import asyncpg
import pyarrow as pa

from connectors.columns import is_extension, uuid_strings
from connectors.sources.connections import ArrowConnections
from connectors.sources.params import Params
from connectors.sources.read_ahead import Query, SourceLost, read_ahead

_ALIVE = "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE pid = $1 AND backend_start = $2)"
_UNREACHABLE = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
)
T = TypeVar("T")
_TYPE_NAMES = "SELECT array_agg(format_type(oid, NULL) ORDER BY n) FROM unnest($1::oid[]) WITH ORDINALITY AS t(oid, n)"
_PARAMETER = re.compile(r"\$(\d+)(?!\d)")
# Literals any session reads back the same (ISO dates, exact floats), set for the quoting statement only.
_LITERAL_SETTINGS = """(SELECT set_config('DateStyle', 'ISO', true), set_config('IntervalStyle', 'postgres', true),
                               set_config('extra_float_digits', '3', true)) AS literal_settings"""
_parameter_types: dict[str, list[str]] = {}
"""The parameter types of each query text seen: preparing a query again would cost two round trips."""


@dataclass
class SourceDatabase:
    pool: asyncpg.Pool
    """For counts, type checks and rendering parameters."""
    dsn: str
    """For the Arrow reader's own connections."""
    statement_timeout_seconds: float = 0
    """How long one query of the reader may run (0: no limit); past it the read raises `SourceTimeout`."""
    connections: ArrowConnections = field(init=False)

    def __post_init__(self) -> None:
        self.connections = ArrowConnections(self.dsn, statement_timeout_seconds=self.statement_timeout_seconds)


@dataclass(frozen=True)
class BatchSize:
    """The batches a writer wants: about `bytes` of Arrow data and at most `rows` rows (0: no wish)."""

    bytes: int = 0
    rows: int = 0


AS_READ = BatchSize()
"""The driver's own batches."""


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
        if (types := _parameter_types.get(query)) is None:
            oids = [t.oid for t in (await conn.prepare(query)).get_parameters()]
            types = _parameter_types.setdefault(query, await conn.fetchval(_TYPE_NAMES, oids))
            if len(_parameter_types) > 1000:  # a new query per export and model: forget the oldest
                del _parameter_types[next(iter(_parameter_types))]
        quoting = ", ".join(f"quote_nullable(${i}::{t})" for i, t in enumerate(types, 1))
        literals = await conn.fetchrow(f"SELECT {quoting} FROM {_LITERAL_SETTINGS}", *args)
    assert literals is not None
    return _PARAMETER.sub(lambda m: f"({literals[int(m[1]) - 1]}::{types[int(m[1]) - 1]})", query)


class SourceTimeout(Exception):
    """A query on the source ran past its statement timeout, and the source cancelled it."""


def _timed_out(error: BaseException, elapsed: float, timeout: float) -> bool:
    """Whether `error` is PostgreSQL's cancel at the statement timeout: its SQLSTATE (57014) when the driver
    passes it on, else (mid-stream, the driver raises a bare OSError with the server's localised words) the
    time the query ran."""
    if not timeout:
        return False
    if getattr(error, "sqlstate", None) == "57014" or "statement timeout" in str(error):
        return True
    return isinstance(error, OSError | adbc.Error) and elapsed >= timeout * 0.99


class RecordStream:
    """A read's record batches (`async for`), and `guard` for the work done with each.

    `query` makes the source's query (on the event loop, when the read starts); `timeout` recognises the
    source's cancel at its statement timeout among the read's errors (given the error and how long it ran)."""

    def __init__(
        self,
        query: Callable[[], Awaitable[Query]],
        convert: Callable[[pa.RecordBatch], list[RecordBatch]],
        timeout: Callable[[BaseException, float], SourceTimeout | None] = lambda error, elapsed: None,
    ) -> None:
        self.error: BaseException | None = None
        self._failed = asyncio.Event()
        self._timeout, self._started = timeout, time.monotonic()
        self._batches: AsyncGenerator[RecordBatch, None] = self._read(query, convert)

    def __aiter__(self) -> AsyncIterator[RecordBatch]:
        return self._batches

    async def aclose(self) -> None:
        """Stop reading (the query is cancelled if it has not ended)."""
        await self._batches.aclose()

    async def guard(self, work: Awaitable[T]) -> T:
        """`work`'s result, unless the read fails first: then `work` is cancelled and the read's error raised."""
        if self.error is not None:
            raise self.error
        task, failing = asyncio.ensure_future(work), asyncio.ensure_future(self._failed.wait())
        try:
            await asyncio.wait({task, failing}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            failing.cancel()
            if not task.done():
                task.cancel()
                await asyncio.wait({task})
        if task.cancelled() and self.error is not None:  # the read failed first
            raise self.error
        return task.result()

    def _fail(self, error: BaseException) -> None:
        if self.error is None:
            self.error = self._timeout(error, time.monotonic() - self._started) or error
            self._failed.set()

    async def _read(
        self, query: Callable[[], Awaitable[Query]], convert: Callable[[pa.RecordBatch], list[RecordBatch]]
    ) -> AsyncGenerator[RecordBatch, None]:
        try:
            async for batch in read_ahead(await query(), convert, self._fail):
                yield batch
        except Exception as error:
            if (timeout := self._timeout(error, time.monotonic() - self._started)) is None:
                raise
            raise timeout from error


def converter(
    position: Callable[[dict[str, Any]], str],
    names: Sequence[str] | None = None,
    json: Collection[str] = (),
    size: BatchSize = AS_READ,
) -> Callable[[pa.RecordBatch], list[RecordBatch]]:
    """What turns a source's record batch into exported batches (in the reader's thread, beside the loop).

    `names` renames the first columns and drops the rest. `position` gets the last row of each batch (all its
    columns) and says where a resumed read starts. The `json` columns are JSON documents the query selected
    as text, typed `arrow.json` here. With a `size`, the source's batches are sliced into batches of about
    that many bytes and at most that many rows, each with its own position: a writer that makes each batch
    durable (a file, a POST) then has a position to resume from after each."""

    def record_batches(data: pa.RecordBatch) -> list[RecordBatch]:
        exported = data if names is None else pa.RecordBatch.from_arrays(data.columns[: len(names)], names=list(names))
        exported = _as_exported(exported, json)  # the columns left behind (the cursor's) are not converted
        batches = []
        for offset, rows in _slices(exported, size):
            last = data.slice(offset + rows - 1, 1).to_pylist()[0]
            batches.append(RecordBatch(exported.slice(offset, rows), position(last)))
        return batches

    return record_batches


def stream(
    db: SourceDatabase,
    query: str,
    args: Sequence[Any],
    *,
    position: Callable[[dict[str, Any]], str],
    names: Sequence[str] | None = None,
    json: Collection[str] = (),
    size: BatchSize = AS_READ,
) -> RecordStream:
    """The PostgreSQL query's rows in record batches (see `converter`); its `json` columns selected as text
    (`::text`), which the driver reads for less than a `jsonb`."""

    async def started() -> Query:
        return _PostgresQuery(db, await inline_parameters(db.pool, query, args))

    def timed_out(error: BaseException, elapsed: float) -> SourceTimeout | None:
        if not _timed_out(error, elapsed, db.statement_timeout_seconds):
            return None
        return SourceTimeout(
            f"the query on the event source ran past its statement timeout of {db.statement_timeout_seconds:g} s "
            "(BATCH_EXPORTS_SOURCE_STATEMENT_TIMEOUT_SECONDS) and was cancelled: narrow the export's filters or "
            "hogql_query, or raise the setting"
        )

    return RecordStream(started, converter(position, names, json, size), timed_out)


def _slices(data: pa.RecordBatch, size: BatchSize) -> list[tuple[int, int]]:
    """`data`'s slices of about `size` (all of it, without one): their first row and length."""
    rows = data.num_rows
    if size.bytes and data.nbytes > size.bytes:
        rows = max(1, data.num_rows * size.bytes // data.nbytes)
    if size.rows:
        rows = min(rows, size.rows)
    return [(offset, min(rows, data.num_rows - offset)) for offset in range(0, data.num_rows, rows)]


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


class _PostgresQuery:
    """`sql` on one of the source's Arrow connections (see `read_ahead.Query`)."""

    def __init__(self, db: SourceDatabase, sql: str) -> None:
        self.db, self.sql = db, sql
        self._conn: adbc.Connection | None = None
        self._cursor: adbc.Cursor | None = None
        self._registry = threading.Lock()  # a cursor is cancelled only while registered, never once closed
        self._backend: tuple[int, Any] | None = None  # the read's server process (pid, start), once connected

    def _opened(self, cursor: adbc.Cursor) -> None:
        with self._registry:
            self._cursor = cursor

    def batches(self) -> Iterator[pa.RecordBatch]:
        self._conn, cursor = self.db.connections.execute(self.sql, self._opened)
        self._backend = self.db.connections.backend(self._conn)
        yield from cursor.fetch_record_batch()

    def cancel(self) -> None:
        with self._registry:
            if self._cursor is not None:
                self._cursor.adbc_cancel()

    def end(self, clean: bool) -> None:
        with self._registry:
            cursor, self._cursor = self._cursor, None
        if cursor is not None:
            with contextlib.suppress(Exception):
                cursor.close()
        if self._conn is not None:
            (self.db.connections.give_back if clean else self.db.connections.discard)(self._conn)

    async def lost(self) -> str | None:
        if self._backend is None:
            return None
        try:
            alive = await self.db.pool.fetchval(_ALIVE, *self._backend)
        except _UNREACHABLE as error:
            return f"the source stopped answering in the middle of the read: {error}"
        return None if alive else "the source ended the read's connection in the middle of the read (a restart?)"


__all__ = [
    "AS_READ",
    "BatchSize",
    "Params",
    "RecordBatch",
    "RecordStream",
    "SourceDatabase",
    "SourceLost",
    "SourceTimeout",
    "converter",
    "inline_parameters",
    "stream",
]
