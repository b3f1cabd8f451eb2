"""What the ClickHouse models share: a read as exported record batches, small answers as rows, and the
conversions that make ClickHouse's answers look like the PostgreSQL source's."""

import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from connectors.sources.buckets import Buckets, Count
from connectors.sources.clickhouse.http import ArrowQuery, ClickHouse, ClickHouseError, Params
from connectors.sources.read_ahead import Query
from connectors.sources.reading import BatchSize, RecordStream, SourceTimeout, converter

TIME = "DateTime64(6, 'UTC')"
"""The type of every time parameter."""
SETTINGS = "output_format_arrow_string_as_string = 1, max_bytes_before_external_sort = 50000000000"
"""Strings as Arrow strings (not binary), and a sort that spills to disk rather than fail."""
GROUPING_SETTINGS = f"{SETTINGS}, max_bytes_before_external_group_by = 50000000000, optimize_aggregation_in_order = 1"
"""A query that aggregates: its grouping spills to disk too, and follows the table's order where it can."""


def read(
    clickhouse: ClickHouse,
    sql: str,
    p: Params,
    *,
    position: Callable[[dict[str, Any]], str],
    names: Sequence[str],
    json: Collection[str],
    size: BatchSize,
) -> RecordStream:
    """The rows of `sql` (which ends in its `SETTINGS`) as exported record batches."""

    async def started() -> Query:
        return ArrowQuery(clickhouse, sql, p.values)

    convert = converter(position, names, json, size)
    return RecordStream(started, lambda data: convert(nullable(data)), timed_out)


async def rows(clickhouse: ClickHouse, sql: str, p: Params, settings: str = SETTINGS) -> list[dict[str, Any]]:
    """A small answer (a count, a minimum) as rows."""
    try:
        return await asyncio.to_thread(clickhouse.rows, f"{sql} SETTINGS {settings}", p.values)
    except ClickHouseError as error:
        raise timed_out(error, 0) or error from None


async def count(clickhouse: ClickHouse, records: str, p: Params, settings: str = SETTINGS) -> int:
    """How many rows the query `records` has."""
    return int((await rows(clickhouse, f"SELECT count() AS n FROM ({records})", p, settings))[0]["n"])


async def counts(
    clickhouse: ClickHouse, records: str, p: Params, buckets: Buckets, settings: str = SETTINGS
) -> list[Count]:
    """The rows of the query `records` per bucket of their `_inserted_at`."""
    sql = f"SELECT {buckets.clickhouse_sql(p, '_inserted_at')} AS bucket, count() AS n FROM ({records}) GROUP BY bucket"
    return [Count(bucket(row["bucket"]), int(row["n"])) for row in await rows(clickhouse, sql, p, settings)]


async def first_at(clickhouse: ClickHouse, records: str, p: Params, settings: str = SETTINGS) -> datetime | None:
    """The first `_inserted_at` of the query `records`, or None when it has no rows."""
    sql = f"SELECT min(_inserted_at) AS at, count() AS n FROM ({records})"
    (row,) = await rows(clickhouse, sql, p, settings)
    return bucket(row["at"]) if int(row["n"]) else None  # type: ignore[return-value]


def bucket(value: object) -> datetime | date:
    """A bucket or a time as JSONEachRow writes it: a Date (`2026-12-05`) or a DateTime64, in UTC."""
    text = str(value)
    return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text).replace(tzinfo=UTC)


def nullable(data: pa.RecordBatch) -> pa.RecordBatch:
    """Every column nullable, as the PostgreSQL source's are (ClickHouse's are not, unless `Nullable`)."""
    schema = pa.schema([f.with_nullable(True) for f in data.schema])
    return data.cast(schema) if schema != data.schema else data


def timed_out(error: BaseException, elapsed: float) -> SourceTimeout | None:
    """ClickHouse's cancel at `max_execution_time`, as the source's timeout."""
    if not (isinstance(error, ClickHouseError) and error.timed_out):
        return None
    return SourceTimeout(
        "the query on ClickHouse ran past its max_execution_time (BATCH_EXPORTS_SOURCE_STATEMENT_TIMEOUT_SECONDS) "
        "and was cancelled: narrow the export's selection, or raise the setting"
    )
