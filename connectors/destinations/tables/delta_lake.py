"""`DeltaLake`: a Delta Lake table, its files on S3 or under the File root, its log written by delta-rs.

An interval is one Delta commit (see `rows`). The data files are written while the interval is read
(`files`: streamed to the table's storage, one per day partition); the commit then adds them and, in the
same transaction, removes what they replace: for events, the files whose time column lies in the interval
(from the log's statistics; a file that also holds other rows is rewritten without the interval's), for
persons and sessions the rows with the same keys (the files holding any are rewritten without them). A
commit that finds the table moved on under it is computed again. Nothing is in the table before the commit,
so `write` never reports a checkpoint.

Each commit carries an application transaction (`txn`: app id `batch-export-{export id}-{run id}`, version
the interval's end in epoch seconds) and the marks in its commit info. A retried attempt whose run's commit
with as many records is there (its `txn` found, then its marks) removes its files instead of committing.

The table is created from the first batch's columns (all nullable), partitioned by `{time column}_day` (a
date, kept in the log, not in the files) unless `partitioning` is `none`; a new column is added to the table
before files that hold it are written; a column whose type differs (beyond a widening) is the user's error.
"""

import asyncio
import datetime as dt
import json
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import CommitProperties, DeltaTable, Schema, Transaction
from deltalake.exceptions import CommitFailedError, TableNotFoundError
from deltalake.transaction import AddAction, RemoveAction

from connectors.destinations.base import Context, Destination, DestinationUserError, Step, WriteRequest
from connectors.destinations.object_stores.local_paths import create_file
from connectors.destinations.tables.files import DataFiles, WrittenFile
from connectors.destinations.tables.location import (
    LOCATION_WRITABLE,
    Location,
    TableLocationConfig,
    locate,
    user_error,
)
from connectors.destinations.tables.rows import DAY_SUFFIX, nullable, type_conflict
from connectors.destinations.tables.writer import BOUNDED_COLUMNS, TableWriter

HISTORY_LOOKED_AT = 200
"""Commits looked through for the run's own, when its transaction says it committed."""
COMMIT_ATTEMPTS = 5
WIDENINGS = {("byte", "long"), ("short", "long"), ("integer", "long"), ("float", "double"), ("byte", "integer"),
             ("short", "integer")}  # fmt: skip
ONE_MILLISECOND = dt.timedelta(milliseconds=1)


class DeltaLakeConfig(TableLocationConfig):
    """A table at `{location}/{table_name}`; partitioned by day, a column `{time column}_day` (a UTC date)."""


def _uri(location: Location, name: str) -> str:
    return location.child(name) if location.on_s3 else location.local_path(name)


def _type_names(schema: pa.Schema) -> dict[str, str]:
    """Each column's type as Delta names it (`string`, `long`, `timestamp`, ...)."""
    return {field.name: str(getattr(field.type, "type", field.type)) for field in Schema.from_arrow(schema).fields}


def _stamp(moment: dt.datetime) -> str:
    """A timestamp as the log's statistics hold it: UTC, to the millisecond (truncated, as delta-rs writes them)."""
    moment = moment.astimezone(dt.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{moment.microsecond // 1000:03d}Z"


def _statistics(file: WrittenFile, columns: set[str]) -> str:
    """The log's statistics of a file (records; minimum, maximum and nulls of `columns`), from its footer."""
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    nulls: dict[str, int] = {}
    metadata = file.metadata
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            column = row_group.column(index)
            name, stats = column.path_in_schema, column.statistics
            if name not in columns or stats is None:
                continue
            nulls[name] = nulls.get(name, 0) + (stats.null_count or 0)
            if stats.has_min_max:
                low[name] = stats.min if name not in low else min(low[name], stats.min)
                high[name] = stats.max if name not in high else max(high[name], stats.max)

    def shown(value: Any) -> Any:
        return _stamp(value) if isinstance(value, dt.datetime) else value

    exact = {name for name in low if not isinstance(low[name], str) or max(len(low[name]), len(high[name])) <= 32}
    return json.dumps({
        "numRecords": file.records,
        "minValues": {name: shown(low[name]) for name in exact},
        "maxValues": {name: shown(high[name]) for name in exact},
        "nullCount": nulls,
    })  # fmt: skip


class DeltaLakeWriter(TableWriter):
    def __init__(self, config: DeltaLakeConfig, request: WriteRequest) -> None:
        super().__init__(config, request)
        self.config = config
        self.uri = _uri(self.location, config.table_name)
        self.options = self.location.delta_storage_options()
        self.fs, base = self.location.filesystem()
        self.root = f"{base}/{config.table_name}"
        self.app_id = f"batch-export-{request.batch_export_id}-{request.run_id}"
        self.version = int(request.end.timestamp())
        self._day_column: str | None = None
        self._types: dict[str, pa.DataType] = {}

    def _open(self, schema: pa.Schema) -> DataFiles:
        self._open_table(schema)
        return self._data_files(None if self.commit_spec.custom_columns else self.commit_spec.model)

    def _file_form(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Schema]:
        conformed = self._conform(batch)
        return conformed, conformed.schema

    def _conform(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """The batch in the table's types (a widened column cast to the table's)."""
        columns = [
            column.cast(self._types[name]) if name in self._types and not column.type.equals(self._types[name])
            else column
            for name, column in zip(batch.schema.names, batch.columns, strict=True)
        ]  # fmt: skip
        return pa.RecordBatch.from_arrays(columns, names=batch.schema.names)

    def _data_files(self, model: str | None) -> DataFiles:
        day = self._day_column

        def name(partition: dt.date | None, stem: str) -> str:
            file = f"part-{stem}.zstd.parquet"
            return f"{day}={partition.isoformat()}/{file}" if partition else file

        def open_output(path: str) -> Any:
            full = f"{self.root}/{path}"
            if self.location.root is not None:  # File storage: no link followed on the way
                return create_file(self.location.root, Path(full))
            return self.fs.open_output_stream(full)

        return DataFiles(
            model,
            name,
            open_output,
            lambda path: self.fs.delete_file(f"{self.root}/{path}"),
            self._time_column if day else None,
        )

    # Blocking work, in a thread.
    def _open_table(self, schema: pa.Schema) -> None:
        """The table's columns, after creating it when missing and adding the batch's new columns to it."""
        self.location.refuse_links(self.config.table_name)
        for attempt in range(3):
            try:
                table = DeltaTable(self.uri, storage_options=self.options)
            except TableNotFoundError:
                table = self._create(schema)
            except OSError as error:
                raise user_error(error, self.location, f"read the table {self.config.table_name}") or error from error
            self._know(table)
            theirs, ours = _type_names(pa.schema(list(self._types.items()))), _type_names(schema)
            problems = [
                f"{name} is {theirs[name]} in the table, {kind} in this export"
                for name, kind in ours.items()
                if name in theirs and kind != theirs[name] and (kind, theirs[name]) not in WIDENINGS
            ]
            if problems:
                raise type_conflict(self.config.table_name, problems)
            new = [field for field in schema if field.name not in self._types]
            if not new:
                return
            try:
                table.alter.add_columns(list(Schema.from_arrow(nullable(pa.schema(new))).fields))
            except Exception:  # another interval added them first: look again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _know(self, table: DeltaTable) -> None:
        """The table's columns and its day column (when it is partitioned by one)."""
        self._types = {field.name: field.type for field in pa.schema(table.schema().to_arrow())}
        day = f"{self._time_column}{DAY_SUFFIX}"
        self._day_column = day if day in table.metadata().partition_columns else None

    def _create(self, schema: pa.Schema) -> DeltaTable:
        day = f"{self._time_column}{DAY_SUFFIX}" if self.config.partitioning == "day" else None
        schema = nullable(schema.append(pa.field(day, pa.date32())) if day else schema)
        bounded = [name for name in BOUNDED_COLUMNS if name in schema.names]
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

    def _already_committed(self, table: DeltaTable) -> bool:
        """Whether this run's commit of as many records is in the table (a retried attempt's)."""
        if table.transaction_version(self.app_id) is None:
            return False
        marks = [entry for entry in self._commit_infos(table, HISTORY_LOOKED_AT) if "batch-export-run-id" in entry]
        if not any(mark["batch-export-run-id"] == self.commit_spec.run_id for mark in marks):
            return True  # its transaction is there, its commit beyond the history looked at: the same run's
        return self.commit_spec.already_committed(marks, self.records)

    def _commit_infos(self, table: DeltaTable, limit: int) -> list[dict[str, Any]]:
        """The commit infos of the table's latest `limit` commits, newest first, read from its log with pyarrow:
        not `DeltaTable.history`, which keeps Python's lock while it waits on the network (see `_table_exists`)."""
        infos = []
        for version in range(table.version(), max(-1, table.version() - limit), -1):
            try:
                with self.fs.open_input_stream(f"{self.root}/_delta_log/{version:020d}.json") as stream:
                    lines = stream.read().decode().splitlines()
            except FileNotFoundError:
                break  # older commits were cleaned up (a checkpoint holds them)
            infos += [entry["commitInfo"] for entry in map(json.loads, lines) if "commitInfo" in entry]
        return infos

    def _add(self, file: WrittenFile, columns: set[str]) -> AddAction:
        partition = {self._day_column: file.day.isoformat()} if self._day_column and file.day else {}
        return AddAction(file.path, file.size, partition, int(time.time() * 1000), True, _statistics(file, columns))

    def _replaced(self, table: DeltaTable) -> tuple[list[RemoveAction], list[WrittenFile]]:
        """The files this commit removes, and the files it writes for the rows of them that stay."""
        found = pa.table(table.get_add_actions(flatten=True))
        spec, removes, kept = self.commit_spec, [], []
        rewrite = self._data_files(None)  # the rows that stay, written as they were
        try:
            for row in found.to_pylist():
                drop = self._interval_rows if spec.replaces_interval else self._key_rows
                verdict = drop(row)
                if verdict is False:
                    continue
                if verdict is not True:  # maybe some of the file's rows stay: written again without the others
                    columns, matching = verdict
                    path = f"{self.root}/{row['path']}"
                    mask = matching(pq.read_table(path, columns=columns, filesystem=self.fs))
                    if not pc.any(mask).as_py():
                        continue
                    remaining = pq.read_table(path, filesystem=self.fs).filter(pc.invert(mask))
                    for piece in remaining.to_batches():
                        rewrite.write(piece, remaining.schema)
                day = row.get(f"partition.{self._day_column}") if self._day_column else None
                partition = {self._day_column: day.isoformat() if day else None} if self._day_column else {}
                removes.append(
                    RemoveAction(path=row["path"], data_change=True, partition_values=partition,
                                 deletion_timestamp=int(time.time() * 1000), size=row["size_bytes"])
                )  # fmt: skip
            kept = rewrite.close()
        except BaseException:
            rewrite.discard()
            raise
        return removes, kept

    def _interval_rows(self, row: dict[str, Any]) -> Any:
        """True: all of the file is in the interval; False: none of it; else the columns to read and how to find
        its rows that are."""
        spec, column = self.commit_spec, self._time_column
        first, last = spec.start.astimezone(dt.UTC).date(), (spec.end - ONE_MILLISECOND).astimezone(dt.UTC).date()
        day = row.get(f"partition.{self._day_column}") if self._day_column else None
        if day is not None and not first <= day <= last:
            return False
        low, high = row.get(f"min.{column}"), row.get(f"max.{column}")
        if low is not None and high is not None:  # the log's maximum is truncated to the millisecond
            if low >= spec.end or high + ONE_MILLISECOND <= spec.start:
                return False
            if low >= spec.start and high + ONE_MILLISECOND <= spec.end:
                return True
        return [column], lambda rows: pc.and_(
            pc.greater_equal(rows.column(column), pa.scalar(spec.start, rows.schema.field(column).type)),
            pc.less(rows.column(column), pa.scalar(spec.end, rows.schema.field(column).type)),
        ).fill_null(False)

    def _key_rows(self, row: dict[str, Any]) -> Any:
        """The columns to read and how to find a file's rows with this commit's keys (False when its statistics
        say it has none)."""
        keys = pa.concat_tables(self._keys)
        last = self.commit_spec.keys[-1] if self.commit_spec.keys else ""
        low, high = row.get(f"min.{last}"), row.get(f"max.{last}")
        values = keys.column(last)
        if low is not None and high is not None:
            inside = pc.and_(pc.greater_equal(values, low), pc.less_equal(values, high))
            if not pc.any(inside).as_py():
                return False

        def matching(rows: pa.Table) -> pa.ChunkedArray:
            mask = pc.is_in(rows.column(last), value_set=values.combine_chunks())
            for key in (self.commit_spec.keys or ())[:-1]:  # the team: one per export
                mask = pc.and_(mask, pc.is_in(rows.column(key), value_set=pc.unique(keys.column(key))))
            return mask.fill_null(False)

        return list(self.commit_spec.keys or ()), matching

    def _commit(self) -> None:
        written = self._written()
        columns = set(BOUNDED_COLUMNS)
        self.location.refuse_links(self.config.table_name)
        for attempt in range(COMMIT_ATTEMPTS):
            table = DeltaTable(self.uri, storage_options=self.options)
            if self._already_committed(table):
                self._landed_already(self.uri)
                return
            removes, kept = self._replaced(table) if (self.commit_spec.replaces_interval or self._keys) else ([], [])
            actions: list[Any] = [*removes, *(self._add(f, columns) for f in [*kept, *written])]
            properties = CommitProperties(
                custom_metadata=self.commit_spec.marks(self.records),
                app_transactions=[Transaction(app_id=self.app_id, version=self.version)],
            )
            try:
                table.create_write_transaction(actions, mode="append", schema=table.schema(),
                                               partition_by=table.metadata().partition_columns,
                                               commit_properties=properties)  # fmt: skip
                return
            except CommitFailedError:  # another commit came first: look at the table again
                for file in kept:
                    self.fs.delete_file(f"{self.root}/{file.path}")
                if attempt == COMMIT_ATTEMPTS - 1:
                    raise
            except OSError as error:
                raise user_error(error, self.location, f"commit to {self.config.table_name}") or error from error

    def _find_table(self) -> bool:
        if not _table_exists(self.uri, self.options):
            return False
        table = DeltaTable(self.uri, storage_options=self.options)
        self._know_time_column(pa.schema(table.schema().to_arrow()).names)
        self._know(table)
        return True


def _table_exists(uri: str, options: dict[str, str] | None) -> bool:
    """Whether a table is at `uri` (its log read). Not `DeltaTable.is_deltatable`, which keeps Python's lock while
    it waits on the network, so the egress proxy (Python, in this process) could never answer it."""
    try:
        DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return False
    return True


async def _table_creatable(config: DeltaLakeConfig, context: Context) -> None:
    """Load the table when it exists (its log read with these credentials); else create and remove one beside it."""

    def check() -> None:
        location = locate(config, context)
        location.refuse_links(config.table_name)
        options = location.delta_storage_options()
        try:
            if _table_exists(_uri(location, config.table_name), options):
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
        LOCATION_WRITABLE,
        Step("Table creatable", "Load the table, or create (then remove) a table beside it.", _table_creatable),
    ),
)
