"""What the ClickHouse models share: a read as exported record batches, small answers as rows, and the
conversions that make ClickHouse's answers look like the PostgreSQL source's."""

import asyncio
from collections.abc import Callable, Collection, Sequence
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa

from connectors.sources.clickhouse.http import ArrowQuery, ClickHouse, ClickHouseError, Params
from connectors.sources.read_ahead import Query
from connectors.sources.reading import BatchSize, RecordStream, SourceTimeout, converter

TIME = "DateTime64(6, 'UTC')"
"""The type of every time parameter."""
SETTINGS = "output_format_arrow_string_as_string = 1, max_bytes_before_external_sort = 50000000000"
"""Strings as Arrow strings (not binary), and a sort that spills to disk rather than fail."""


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
