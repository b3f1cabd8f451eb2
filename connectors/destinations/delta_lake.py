"""`DeltaLake`: a Delta Lake table (the delta-rs writer), its files on S3 or under the File root.

An interval is one Delta commit (see `table_rows`), streamed: delta-rs writes the data files from the
batches as the interval is read (a thread of its own, fed through a bounded queue) and commits when the
last one is in. Events replace the interval (a `replaceWhere` predicate on the time column, which delta-rs
also checks every row against); a continued execution appends; persons and sessions merge by key
(`MERGE ... WHEN MATCHED UPDATE ALL WHEN NOT MATCHED INSERT ALL`). Nothing is in the table before the
commit, so `write` never reports a checkpoint.

Each commit carries an application transaction (`txn`): app id `batch-export-{export id}-{run id}`,
version the interval's end (epoch seconds), and the marks in its commit info. A retried attempt whose run
already committed (the `txn` is there) with as many records as it read does not commit again: it ends
its stream with an error, which leaves the table as it was.

The table is created from the first batch's columns, partitioned by `{time column}_day` (a date the writer
adds) unless `partitioning` is `none`; a new column is merged into the table's schema; columns the table has
and the batch lacks are written as nulls; a column whose type differs (beyond a widening) is the user's error.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC
from typing import Any, Literal

import pyarrow as pa
import pyarrow.compute as pc
from deltalake import (
    ColumnProperties,
    CommitProperties,
    DeltaTable,
    Schema,
    Transaction,
    WriterProperties,
    write_deltalake,
)
from deltalake.exceptions import TableNotFoundError
from pydantic import Field

from connectors.destinations.base import Context, Destination, DestinationUserError, IntervalWriter, Step, WriteRequest
from connectors.destinations.table_location import Location, TableLocationConfig, check_writable, locate, user_error
from connectors.destinations.table_rows import DAY_SUFFIX, TableCommit, type_conflict

logger = logging.getLogger(__name__)

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
QUEUED_BATCHES = 4
HISTORY_LOOKED_AT = 200
"""Commits looked through for the run's own, when its transaction says it committed."""
WIDENINGS = {("byte", "long"), ("short", "long"), ("integer", "long"), ("float", "double"), ("byte", "integer"),
             ("short", "integer"), ("date", "timestamp")}  # fmt: skip
BOUNDED_COLUMNS = ("_inserted_at", "_interval_start", "timestamp", "distinct_id", "session_id", "team_id")
WRITER = WriterProperties(
    compression="ZSTD",
    compression_level=1,
    # Statistics where readers prune by them (times, keys); JSON documents and ids are many bytes for none.
    default_column_properties=ColumnProperties(statistics_enabled="NONE"),
    column_properties={name: ColumnProperties(statistics_enabled="CHUNK") for name in BOUNDED_COLUMNS},
)


class DeltaLakeConfig(TableLocationConfig):
    table_name: str = Field(pattern=_IDENTIFIER, description="The table's directory under the location.")
    partitioning: Literal["day", "none"] = Field(
        "day", description="day: partitioned by `{time column}_day`, the UTC date of `_inserted_at`."
    )


def delta_type(kind: Any) -> str:
    """A field type as Delta names it (`string`, `long`, `timestamp`, ...), or its JSON for nested ones."""
    return str(kind.type) if hasattr(kind, "type") and isinstance(kind.type, str) else str(kind)


def _type_names(schema: pa.Schema) -> dict[str, str]:
    return {field.name: delta_type(field.type) for field in Schema.from_arrow(schema).fields}


class _Stop(Exception):
    """Ends a stream without a commit."""


class _Feed:
    """Batches handed from the event loop to the delta-rs writer's thread, a few at a time."""

    END: Any = object()

    def __init__(self, schema: pa.Schema) -> None:
        self.schema = schema
        self.queue: queue.Queue[Any] = queue.Queue(QUEUED_BATCHES)

    def reader(self) -> pa.RecordBatchReader:
        def batches() -> Iterator[pa.RecordBatch]:
            while (item := self.queue.get()) is not self.END:
                if isinstance(item, BaseException):
                    raise item
                yield item

        return pa.RecordBatchReader.from_batches(self.schema, batches())


class DeltaLakeWriter(IntervalWriter):
    def __init__(self, config: DeltaLakeConfig, request: WriteRequest) -> None:
        self.config = config
        self.commit_spec = TableCommit.of(request)
        self.location = locate(config, request.context)
        self.uri = _uri(self.location, config.table_name)
        self.options = self.location.delta_storage_options()
        self.app_id = f"batch-export-{request.batch_export_id}-{request.run_id}"
        self.version = int(request.end.timestamp())
        self.records = 0
        self._time_column = ""
        self._day_column: str | None = None
        self._table_types: dict[str, pa.DataType] = {}
        self._feed: _Feed | None = None
        self._done: concurrent.futures.Future[None] | None = None

    async def write(self, batch: pa.RecordBatch) -> bool:
        prepared = self.commit_spec.prepare(batch)
        if self._feed is None:
            self._time_column = self.commit_spec.time_column(prepared.schema)
            table = await asyncio.to_thread(self._open, prepared.schema)
            self._start(table, self._conform(self._with_day(prepared)).schema)
        prepared = self._conform(self._with_day(prepared))
        await self._hand(prepared)
        self.records += batch.num_rows
        self.bytes_written += prepared.nbytes
        return False  # nothing is in the table before the commit

    def _with_day(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        if self._day_column is None:
            return batch
        return batch.append_column(self._day_column, pc.cast(batch.column(self._time_column), pa.date32()))

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch in the table's columns and types (nulls for what it lacks), its new columns after them."""
        columns, names = [], []
        for name, kind in self._table_types.items():
            index = batch.schema.get_field_index(name)
            column = batch.column(index) if index >= 0 else pa.nulls(batch.num_rows, kind)
            columns.append(column if column.type.equals(kind) else pc.cast(column, kind))
            names.append(name)
        for name, column in zip(batch.schema.names, batch.columns, strict=True):
            if name not in self._table_types:
                columns.append(column)
                names.append(name)
        return pa.RecordBatch.from_arrays(columns, names=names)

    def _open(self, schema: pa.Schema) -> DeltaTable:
        """The table (created when missing), its columns checked against the batch's."""
        try:
            table = DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            table = self._create(schema)
        except OSError as error:
            raise user_error(error, self.location, f"read the table {self.config.table_name}") or error from error
        self._know(table)
        theirs, ours = _type_names(pa.schema(list(self._table_types.items()))), _type_names(schema)
        problems = [
            f"{name} is {theirs[name]} in the table, {kind} in this export"
            for name, kind in ours.items()
            if name in theirs and kind != theirs[name] and (kind, theirs[name]) not in WIDENINGS
        ]
        if problems:
            raise type_conflict(self.config.table_name, problems)
        return table

    def _know(self, table: DeltaTable) -> None:
        """The table's columns and its day column (when it is partitioned by one)."""
        self._table_types = {field.name: field.type for field in pa.schema(table.schema().to_arrow())}
        day = f"{self._time_column}{DAY_SUFFIX}"
        self._day_column = day if day in table.metadata().partition_columns else None

    def _create(self, schema: pa.Schema) -> DeltaTable:
        day = f"{self._time_column}{DAY_SUFFIX}" if self.config.partitioning == "day" else None
        if day:
            schema = schema.append(pa.field(day, pa.date32()))
        bounded = [name for name in (*BOUNDED_COLUMNS, day) if name and name in schema.names]
        try:
            return DeltaTable.create(
                self.uri,
                schema,
                mode="ignore",  # another interval may have created it a moment ago
                partition_by=[day] if day else None,
                configuration={
                    "delta.dataSkippingStatsColumns": ",".join(bounded),
                    "delta.setTransactionRetentionDuration": "interval 30 days",
                },
                storage_options=self.options,
            )
        except OSError as error:
            raise user_error(error, self.location, f"create the table {self.config.table_name}") or error from error

    def _start(self, table: DeltaTable, schema: pa.Schema) -> None:
        """Start the thread that writes the stream and commits it."""
        feed = self._feed = _Feed(schema)
        new_columns = bool(set(schema.names) - set(self._table_types))
        commit = CommitProperties(
            custom_metadata=self.commit_spec.marks(None),
            app_transactions=[Transaction(app_id=self.app_id, version=self.version)],
        )
        spec = self.commit_spec
        run: Callable[[], Any]
        if spec.keys is not None:
            predicate = " AND ".join(f"t.{key} = s.{key}" for key in spec.keys)
            merge = table.merge(
                feed.reader(), predicate, source_alias="s", target_alias="t", merge_schema=new_columns,
                writer_properties=WRITER, commit_properties=commit,
            )  # fmt: skip
            run = merge.when_matched_update_all().when_not_matched_insert_all().execute
        else:
            replace = self._interval_predicate() if spec.replaces_interval else None

            def run() -> None:
                schema_mode: Literal["merge"] | None = "merge" if new_columns else None
                if replace is not None:
                    write_deltalake(table, feed.reader(), mode="overwrite", predicate=replace, schema_mode=schema_mode,
                                    writer_properties=WRITER, commit_properties=commit)  # fmt: skip
                else:
                    write_deltalake(table, feed.reader(), mode="append", schema_mode=schema_mode,
                                    writer_properties=WRITER, commit_properties=commit)  # fmt: skip

        done = self._done = concurrent.futures.Future()

        def thread() -> None:
            try:
                run()
                done.set_result(None)
            except BaseException as error:
                done.set_exception(error)

        threading.Thread(target=thread, name="delta-writer", daemon=True).start()

    def _interval_predicate(self) -> str:
        """The interval's rows (the time column in it), and its days, which let delta-rs skip all others."""
        start, end, column = (
            self.commit_spec.start.astimezone(UTC),
            self.commit_spec.end.astimezone(UTC),
            self._time_column,
        )
        predicate = f"{column} >= '{start:%Y-%m-%dT%H:%M:%S.%fZ}' AND {column} < '{end:%Y-%m-%dT%H:%M:%S.%fZ}'"
        if self._day_column:
            predicate += f" AND {self._day_column} >= '{start:%Y-%m-%d}' AND {self._day_column} <= '{end:%Y-%m-%d}'"
        return predicate

    async def _hand(self, item: Any) -> None:
        """Give the writer's thread one item, waiting while its queue is full; its error if it stopped."""
        assert self._feed is not None and self._done is not None
        feed, done = self._feed, self._done

        def put() -> None:
            while not done.done():
                try:
                    feed.queue.put(item, timeout=0.5)
                    return
                except queue.Full:
                    continue

        await asyncio.to_thread(put)
        if done.done() and item is not _Feed.END and not isinstance(item, _Stop):
            await self._finished()  # raises why the writer stopped

    async def _finished(self) -> None:
        assert self._done is not None
        try:
            await asyncio.wrap_future(self._done)
        except OSError as error:
            raise user_error(error, self.location, f"write the table {self.config.table_name}") or error from error
        except Exception as error:  # delta-rs's own errors are not typed by cause: its words decide
            raise user_error(error, self.location, f"write the table {self.config.table_name}") or error from error

    def _already_committed(self) -> bool:
        """Whether this run's commit of as many records is in the table (a retried attempt's)."""
        table = DeltaTable(self.uri, storage_options=self.options)
        if table.transaction_version(self.app_id) is None:
            return False
        for entry in table.history(HISTORY_LOOKED_AT):
            if entry.get("batch-export-run-id") == self.commit_spec.run_id:
                metrics = entry.get("operationMetrics") or {}
                rows = metrics.get("num_source_rows", metrics.get("num_added_rows"))
                return rows is None or int(rows) == self.records
        return True  # its transaction is there, its commit beyond the history looked at: the same run's

    async def commit(self, final: bool = True) -> None:
        if self._feed is None:  # nothing was written: only a replaced interval has something to do
            if not self.commit_spec.replaces_interval:
                return
            table = await asyncio.to_thread(self._existing)
            if table is None:
                return  # no table, and nothing to put in one
            self._time_column = self.commit_spec.time_column(pa.schema(table.schema().to_arrow()))
            self._know(table)
            self._start(table, pa.schema(list(self._table_types.items())))
        if await asyncio.to_thread(self._already_committed):
            logger.info(
                "%s: run %s committed these %s records already", self.uri, self.commit_spec.run_id, self.records
            )
            await self.abort()
            return
        await self._hand(_Feed.END)
        await self._finished()
        self.files = 1 if self.records else 0  # a commit of rows: the execution after it is not the first

    def _existing(self) -> DeltaTable | None:
        try:
            return DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            return None

    async def abort(self) -> None:
        if self._feed is None or self._done is None or self._done.done():
            return
        await self._hand(_Stop())
        with contextlib.suppress(Exception):
            await asyncio.wrap_future(self._done)


async def _location_writable(config: DeltaLakeConfig, context: Context) -> None:
    await asyncio.to_thread(check_writable, locate(config, context))


def _uri(location: Location, name: str) -> str:
    return location.child(name) if location.on_s3 else location.local_path(name)


async def _table_creatable(config: DeltaLakeConfig, context: Context) -> None:
    """Load the table when it exists (its log read with these credentials); else create and remove one beside it."""

    def check() -> None:
        location = locate(config, context)
        options = location.delta_storage_options()
        try:
            if DeltaTable.is_deltatable(_uri(location, config.table_name), storage_options=options):
                DeltaTable(_uri(location, config.table_name), storage_options=options)
                return
            probe = f"_batch_exports_check_{uuid.uuid4().hex[:12]}"
            DeltaTable.create(_uri(location, probe), pa.schema([("probe", pa.string())]), storage_options=options)
            fs, base = location.filesystem()
            fs.delete_dir(f"{base}/{probe}")
        except Exception as error:
            raise user_error(error, location, f"create the table {config.table_name}") or DestinationUserError(
                f"cannot create the table {config.table_name} at {location.uri}: {error}"
            ) from error

    await asyncio.to_thread(check)


DESTINATION = Destination(
    type="DeltaLake",
    config=DeltaLakeConfig,
    open_writer=DeltaLakeWriter,
    steps=(
        Step("Location writable", "Write (then remove) an empty file at the table's location.", _location_writable),
        Step("Table creatable", "Load the table, or create (then remove) a table beside it.", _table_creatable),
    ),
)
