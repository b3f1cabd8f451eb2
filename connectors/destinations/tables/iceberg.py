"""`Iceberg`: an Apache Iceberg table (pyiceberg), its files on S3 or under the File root, its catalog a SQL
catalog (the service's own PostgreSQL unless `BATCH_EXPORTS_ICEBERG_CATALOG_URL` names another).

An interval is one catalog commit (see `rows`): the data files are written while the interval is
read (`files`: streamed to the table's storage, one per day partition), and the commit, in one
transaction, deletes the rows it replaces and adds the new files, its snapshots marked with the export, the
run and the record count. Nothing is in the table before
the commit, so `write` never reports a checkpoint: a retried attempt writes the interval again, and its
commit is skipped when the run's commit with the same records is already there.

The table is created from the first batch's columns (all nullable), partitioned by day of its time column
unless `partitioning` is `none`; a new column is added to it before files that hold it are written.

The catalog's rows are the catalog's own (schema `iceberg_catalog`), and one project's tables at one location
are a catalog of their own: a config reaches only its project's tables kept where its storage lets it write (a
project pointed at another's bucket learns nothing of the other's tables). The table's files are
read and written only under its location (`LocationFileIO`), whatever a metadata file there names.
"""

import asyncio
import datetime as dt
import hashlib
import threading
import uuid
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlencode, urlparse

import pyarrow as pa
import sqlalchemy
from pydantic import Field
from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchTableError,
    TableAlreadyExistsError,
    ValidationError,
)
from pyiceberg.expressions import And, BooleanExpression, EqualTo, GreaterThanOrEqual, In, LessThan, Or
from pyiceberg.io import InputFile, OutputFile
from pyiceberg.io.pyarrow import (
    PyArrowFile,
    PyArrowFileIO,
    compute_statistics_plan,
    data_file_statistics_from_parquet_metadata,
    parquet_path_to_id_mapping,
)
from pyiceberg.manifest import DataFile, DataFileContent, FileFormat
from pyiceberg.schema import Schema
from pyiceberg.table import Table
from pyiceberg.transforms import DayTransform
from pyiceberg.typedef import Record
from pyiceberg.types import NestedField, StringType

from connectors.destinations.base import (
    Context,
    Destination,
    DestinationUserError,
    Step,
    WriteRequest,
)
from connectors.destinations.object_stores.local_paths import refuse_links
from connectors.destinations.tables.files import DataFiles, WrittenFile, days_since_epoch
from connectors.destinations.tables.iceberg_internals import schema_conflict
from connectors.destinations.tables.location import (
    IDENTIFIER,
    LOCATION_WRITABLE,
    Location,
    TableLocationConfig,
    locate,
    user_error,
)
from connectors.destinations.tables.rows import DAY_SUFFIX, TableCommit, nullable, type_conflict
from connectors.destinations.tables.writer import BOUNDED_COLUMNS, TableWriter

# The first export of an interval deletes nothing, which pyiceberg warns of on every such commit.
warnings.filterwarnings("ignore", "Delete operation did not match any records", UserWarning)

CATALOG_SCHEMA = "iceberg_catalog"
CATALOG_SETTING = "iceberg_catalog_url"
"""The destination setting naming the catalog's PostgreSQL (`Context.setting`)."""
ALLOWED_PREFIX = "batch-exports.allowed-prefix"
"""The FileIO property naming the only place the table's files may be."""
TABLE_PROPERTIES = {
    "write.parquet.compression-codec": "zstd",
    "write.parquet.compression-level": "1",
    # Column bounds only where readers (and the commit's own checks) use them: times and keys, not JSON.
    "write.metadata.metrics.default": "counts",
}


class IcebergConfig(TableLocationConfig):
    namespace: str = Field("posthog", pattern=IDENTIFIER, description="Created if missing.")


class LocationFileIO(PyArrowFileIO):
    """pyiceberg's pyarrow FileIO, refusing any file outside the table's location."""

    def _inside(self, location: str) -> str:
        allowed = self.properties[ALLOWED_PREFIX]
        if not location.startswith(allowed) or "/../" in location:
            raise DestinationUserError(f"the table names a file outside its location {allowed}: {location[:300]}")
        if allowed.startswith("file://"):  # no link between the location and the file
            refuse_links(Path(unquote(urlparse(allowed).path)), Path(unquote(urlparse(location).path)).parent,
                         inside=False)  # fmt: skip
        return location

    def new_input(self, location: str) -> PyArrowFile:
        return super().new_input(self._inside(location))

    def new_output(self, location: str) -> PyArrowFile:
        return super().new_output(self._inside(location))

    def delete(self, location: str | InputFile | OutputFile) -> None:
        path = location.location if isinstance(location, (InputFile, OutputFile)) else location
        super().delete(self._inside(path))


_schemas_made: set[str] = set()
_schemas_lock = threading.Lock()


def catalog_url(url: str) -> str:
    """The SQLAlchemy URL of the catalog: psycopg 3, the catalog's own schema first on the search path."""
    parsed = urlparse(url)
    query = [(k, v) for k, v in parse_qsl(parsed.query) if k != "options"]
    query.append(("options", f"-csearch_path={CATALOG_SCHEMA}"))
    return parsed._replace(scheme="postgresql+psycopg", query=urlencode(query)).geturl()


def _ensure_schema(url: str) -> None:
    with _schemas_lock:
        if url in _schemas_made:
            return
        engine = sqlalchemy.create_engine(url)
        try:
            with engine.begin() as conn:
                conn.execute(sqlalchemy.text(f'CREATE SCHEMA IF NOT EXISTS "{CATALOG_SCHEMA}"'))
        finally:
            engine.dispose()
        _schemas_made.add(url)


def catalog_name(location: Location, project_id: int | None = None) -> str:
    """The catalog of one project's tables at one location (at most 255 characters, the catalog table's limit).
    Without a project: the name catalogs had before they were per project (`load_table` adopts their tables)."""
    where = location.uri + (f" at {location.config.endpoint_url}" if location.config.endpoint_url else "")
    if project_id is not None:
        where = f"project {project_id}: {where}"
    return where if len(where) <= 255 else f"{where[:190]}#{hashlib.sha256(where.encode()).hexdigest()}"


def open_catalog(context: Context, location: Location, project: bool = True) -> SqlCatalog:
    """The catalog of the context's project at the location (blocking); `project=False`: the location's catalog
    as it was before catalogs were per project."""
    if context.project_id is None:
        raise RuntimeError("an Iceberg catalog belongs to a project: the context names none")
    url = catalog_url(context.setting(CATALOG_SETTING))
    try:
        _ensure_schema(url)
        return SqlCatalog(
            catalog_name(location, context.project_id if project else None),
            uri=url,
            **{"py-io-impl": f"{__name__}.LocationFileIO", ALLOWED_PREFIX: location.uri.rstrip("/") + "/"},
            **location.iceberg_properties(),
        )
    except sqlalchemy.exc.OperationalError as error:  # the service's own database: not the user's to fix
        raise RuntimeError(f"the Iceberg catalog is unreachable: {str(error).splitlines()[0]}") from None


def load_table(catalog: SqlCatalog, context: Context, location: Location, identifier: tuple[str, str]) -> Table:
    """The project's table; a table kept under the location's catalog of before (shared by every project) becomes
    the project's when its metadata can be read with this config's credentials. Otherwise it does not exist for
    this project, and nothing of it (not its metadata file's name) is told."""
    try:
        return catalog.load_table(identifier)
    except NoSuchTableError:
        legacy = open_catalog(context, location, project=False)
        try:
            try:
                legacy.load_table(identifier)
            except Exception:
                raise NoSuchTableError(f"Table does not exist: {'.'.join(identifier)}") from None
            catalog.create_namespace_if_not_exists(identifier[0])
            with catalog.engine.begin() as conn:
                conn.execute(
                    sqlalchemy.text(
                        "UPDATE iceberg_tables SET catalog_name = :mine WHERE catalog_name = :shared"
                        " AND table_namespace = :namespace AND table_name = :name"
                    ),
                    {"mine": catalog.name, "shared": legacy.name, "namespace": identifier[0], "name": identifier[1]},
                )
        finally:
            legacy.engine.dispose()
        return catalog.load_table(identifier)


# pyiceberg's predicates take (term, value) positionally; the pydantic mypy plugin sees only their fields.
def _interval_filter(column: str, commit: TableCommit) -> BooleanExpression:
    start, end = commit.start.isoformat(), commit.end.isoformat()
    return And(GreaterThanOrEqual(column, start), LessThan(column, end))  # type: ignore[call-arg]


def _key_filter(keys: tuple[str, ...], rows: pa.Table) -> BooleanExpression:
    """Rows with any of the keys in `rows` (a key of one column, or a team id and one more)."""
    if len(keys) == 1:
        return In(keys[0], set(rows.column(keys[0]).to_pylist()))  # type: ignore[call-arg]
    team, key = keys
    by_team: dict[Any, set[Any]] = {}
    for team_id, value in zip(rows.column(team).to_pylist(), rows.column(key).to_pylist(), strict=True):
        by_team.setdefault(team_id, set()).add(value)
    parts = [And(EqualTo(team, t), In(key, values)) for t, values in by_team.items()]  # type: ignore[call-arg]
    return parts[0] if len(parts) == 1 else Or(*parts)


class IcebergWriter(TableWriter):
    def __init__(self, config: IcebergConfig, request: WriteRequest) -> None:
        super().__init__(config, request)
        self.config = config
        self.identifier = (config.namespace, config.table_name)
        self.name = f"{config.namespace}.{config.table_name}"
        self._catalog: SqlCatalog | None = None
        self._table: Table | None = None
        self._file_schemas: dict[pa.Schema, pa.Schema] = {}

    def _open(self, schema: pa.Schema) -> DataFiles:
        self._table = self._open_table(schema)
        return self._data_files(self._table)

    async def _take_columns(self, schema: pa.Schema) -> None:
        assert self._table is not None
        if not set(schema.names) <= set(self._table.schema().column_names):  # a column new in this batch
            self._table = await asyncio.to_thread(self._open_table, schema)

    def _file_form(self, batch: pa.RecordBatch) -> tuple[pa.RecordBatch, pa.Schema]:
        return batch, self._file_schema(batch.schema)

    def _data_files(self, table: Table) -> DataFiles:
        spec = table.spec()
        day_of = None
        if not spec.is_unpartitioned():
            (field,) = spec.fields
            source = table.schema().find_column_name(field.source_id)
            if not isinstance(field.transform, DayTransform) or source != self._time_column:
                raise DestinationUserError(
                    f"the table {self.name} is partitioned by {field.transform}({source}); this destination writes "
                    f"tables partitioned by day({self._time_column}), or not partitioned"
                )
            day_of = self._time_column
        data = f"{table.location().rstrip('/')}/data"

        def name(day: dt.date | None, stem: str) -> str:
            return f"{data}/{day_of}{DAY_SUFFIX}={day.isoformat()}/{stem}.parquet" if day else f"{data}/{stem}.parquet"

        model = None if self.commit_spec.custom_columns else self.commit_spec.model
        return DataFiles(model, name, lambda path: table.io.new_output(path).create(overwrite=True), table.io.delete,
                         day_of)  # fmt: skip

    def _file_schema(self, schema: pa.Schema) -> pa.Schema:
        """The batch's schema with each column's Iceberg field id (how readers match a file's columns)."""
        if (found := self._file_schemas.get(schema)) is None:
            assert self._table is not None
            ids = self._table.schema()
            found = self._file_schemas[schema] = pa.schema(
                [f.with_metadata({b"PARQUET:field_id": str(ids.find_field(f.name).field_id)}) for f in schema]
            )
        return found

    # Blocking work, in a thread.
    def _catalog_(self) -> SqlCatalog:
        if self._catalog is None:
            self._catalog = open_catalog(self.context, self.location)
        return self._catalog

    def _open_table(self, schema: pa.Schema) -> Table:
        """The table, created when missing; new columns added to it (a type conflict is the user's error)."""
        self.location.refuse_links(*self.identifier)
        catalog = self._catalog_()
        try:
            table = load_table(catalog, self.context, self.location, self.identifier)
        except NoSuchTableError:
            table = self._create(catalog, schema)
        except OSError as error:
            raise user_error(error, self.location, f"read the table {self.name}") or error from error
        for attempt in range(3):
            try:
                with table.update_schema() as update:
                    update.union_by_name(nullable(schema))
                break
            except ValidationError as error:
                raise type_conflict(self.name, [str(error)]) from None
            except CommitFailedException:  # another interval changed it first: look again
                if attempt == 2:
                    raise
                table = catalog.load_table(self.identifier)
        if conflict := schema_conflict(table.schema(), schema, table.format_version):
            raise type_conflict(self.name, [conflict])
        return table

    def _create(self, catalog: SqlCatalog, schema: pa.Schema) -> Table:
        catalog.create_namespace_if_not_exists(self.config.namespace)
        properties = {**TABLE_PROPERTIES, **{f"write.metadata.metrics.column.{c}": "full" for c in BOUNDED_COLUMNS}}
        try:
            with catalog.create_table_transaction(
                self.identifier,
                schema=nullable(schema),
                location=self.location.child(self.config.namespace, self.config.table_name),
                properties=properties,
            ) as create:
                if self.config.partitioning == "day":
                    with create.update_spec() as spec:
                        spec.add_field(self._time_column, DayTransform(), f"{self._time_column}{DAY_SUFFIX}")
        except TableAlreadyExistsError:  # another interval created it first
            pass
        except OSError as error:
            raise user_error(error, self.location, f"create the table {self.name}") or error from error
        return catalog.load_table(self.identifier)

    def _data_file(self, table: Table, written: WrittenFile) -> DataFile:
        """What the table's manifest says of a file: its partition, size and statistics (from its footer)."""
        schema = table.schema()
        statistics = data_file_statistics_from_parquet_metadata(
            parquet_metadata=written.metadata,
            stats_columns=compute_statistics_plan(schema, table.metadata.properties),
            parquet_column_mapping=parquet_path_to_id_mapping(schema),
        )
        return DataFile.from_args(
            content=DataFileContent.DATA,
            file_path=written.path,
            file_format=FileFormat.PARQUET,
            partition=Record(days_since_epoch(written.day)) if written.day else Record(),
            file_size_in_bytes=written.size,
            sort_order_id=None,
            spec_id=table.metadata.default_spec_id,
            equality_ids=None,
            key_metadata=None,
            **statistics.to_serialized_dict(),
        )

    def _commit(self) -> None:
        """One transaction: delete what the interval replaces, add the files; nothing if this commit is there."""
        table, commit = self._table, self.commit_spec
        assert table is not None
        self.location.refuse_links(*self.identifier)
        written = self._written()
        table.refresh()
        marks_found = [s.summary.additional_properties for s in table.snapshots() if s.summary is not None]
        if commit.already_committed(marks_found, self.records):
            self._landed_already(self.name)
            return
        marks = commit.marks(self.records)
        transaction = table.transaction()
        if commit.replaces_interval:
            transaction.delete(_interval_filter(self._time_column, commit), snapshot_properties=marks)
        elif commit.keys and self._keys:
            transaction.delete(_key_filter(commit.keys, pa.concat_tables(self._keys)), snapshot_properties=marks)
        with transaction.update_snapshot(snapshot_properties=marks).fast_append() as append:
            for file in written:
                append.append_data_file(self._data_file(table, file))
        try:
            transaction.commit_transaction()
        except OSError as error:
            raise user_error(error, self.location, f"commit to {self.name}") or error from error

    def _find_table(self) -> bool:
        try:
            self._table = load_table(self._catalog_(), self.context, self.location, self.identifier)
        except NoSuchTableError:
            return False  # no table, and nothing to put in one
        self._know_time_column(self._table.schema().column_names)
        return True

    async def _close(self) -> None:
        catalog, self._catalog = self._catalog, None
        if catalog is not None:
            await asyncio.to_thread(catalog.engine.dispose)


async def _catalog_reachable(config: IcebergConfig, context: Context) -> None:
    def check() -> None:
        try:
            catalog = open_catalog(context, locate(config, context))
        except RuntimeError as error:
            raise DestinationUserError(str(error)) from None
        try:
            catalog.list_namespaces()
        finally:
            catalog.engine.dispose()

    await asyncio.to_thread(check)


async def _table_creatable(config: IcebergConfig, context: Context) -> None:
    """Load the table when it exists (its metadata read with these credentials); else create and drop one."""

    def check() -> None:
        location = locate(config, context)
        location.refuse_links(config.namespace, config.table_name)
        catalog = open_catalog(context, location)
        name = f"{config.namespace}.{config.table_name}"
        try:
            try:
                load_table(catalog, context, location, (config.namespace, config.table_name))
                return
            except NoSuchTableError:
                pass
            probe = (config.namespace, f"_batch_exports_check_{uuid.uuid4().hex[:12]}")
            catalog.create_namespace_if_not_exists(config.namespace)
            catalog.create_table(
                probe,
                schema=Schema(NestedField(1, "probe", StringType(), required=False)),
                location=location.child(*probe),
            )
            catalog.purge_table(probe)
        except OSError as error:
            raise user_error(error, location, f"create the table {name}") or DestinationUserError(
                f"cannot create the table {name} at {location.uri}: {error}"
            ) from error
        finally:
            catalog.engine.dispose()

    await asyncio.to_thread(check)


DESTINATION = Destination(
    type="Iceberg",
    config=IcebergConfig,
    open_writer=IcebergWriter,
    steps=(
        Step("Catalog reachable", "Open the SQL catalog and list its namespaces.", _catalog_reachable),
        LOCATION_WRITABLE,
        Step("Table creatable", "Load the table, or create (then drop) a table beside it.", _table_creatable),
    ),
)
