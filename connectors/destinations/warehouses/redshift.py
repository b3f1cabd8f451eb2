"""`Redshift`: rows into the table PostHog's Redshift export creates, exactly once per record.

Stage then apply: an attempt inserts the interval, in batched multi-row `INSERT`s, into a stage table of its own
(`bx_stage_{run}_{attempt}`, beside the target), then applies it in one transaction: events replace the rows of
the same `uuid`; persons and sessions replace a row only when the staged one is newer (`person_version` or
`person_distinct_id_version`; `end_timestamp`) and add the keys the target lacks. The same transaction records
a mark of the run and of how many records it applied in `bx_run_marks`, so an attempt of a run whose apply
landed (and was then lost) applies nothing again; an attempt that staged other records (one that resumed a
shorter attempt) applies them, by key as always. The stage is dropped when the attempt ends, applied or not;
the stages an earlier attempt of the run left are dropped before this one stages.

The connection is the Postgres destination's (`postgres.connect`): Redshift speaks PostgreSQL's protocol, so the
same address policy, TLS rules and refusal of this service's own databases hold. Every statement is one Redshift
runs (a unit test parses each with sqlglot's Redshift dialect); the tests run them on PostgreSQL with a `SUPER`
domain and a `JSON_PARSE` function, as PostHog's own Redshift tests do.

`mode: COPY` (files and a manifest in S3, then `COPY ... MANIFEST`) is refused at save: no server here runs that
statement, so it cannot be proven.
"""

import asyncio
import contextlib
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from itertools import chain
from typing import Any, ClassVar, Literal

import asyncpg
import pyarrow as pa
import pyarrow.compute as pc
from asyncpg.prepared_stmt import PreparedStatement
from pydantic import Field, field_validator

from connectors.columns import is_extension, json_values, uuid_strings
from connectors.destinations.base import Context, Destination, DestinationUserError, Step, WriteRequest
from connectors.destinations.warehouses.postgres import USER_ERRORS as POSTGRES_USER_ERRORS
from connectors.destinations.warehouses.postgres import PostgresConfig, _connects, apply_statements, connect, quote
from connectors.destinations.warehouses.staging import StagedWriter
from connectors.sources.schemas import KEYS, POSTGRES_SCHEMAS

COPY_REFUSED = (
    "mode COPY is not offered: its COPY ... MANIFEST statement runs only on Redshift itself, and nothing here can "
    "prove it; use mode INSERT"
)


class RedshiftConfig(PostgresConfig):
    """PostHog's Redshift fields; the connection's are PostgreSQL's (`user` and `password` secret, `host`,
    `port`, `database` and `has_self_signed_cert` where they go)."""

    server: ClassVar[str] = "Redshift"

    port: int = Field(5439, ge=1, le=65535)
    table_name: str = Field(
        pattern=r"^[A-Za-z_][A-Za-z0-9_]{0,62}$", description="Created if missing, as PostHog creates it."
    )
    properties_data_type: Literal["varchar", "super"] = Field(
        "varchar", description="The type of the JSON columns (properties, set, set_once, person_properties)."
    )
    mode: Literal["INSERT", "COPY"] = Field("INSERT", description="INSERT (batched inserts); COPY is not offered.")
    copy_inputs: dict[str, Any] | None = Field(None, description="Only with mode COPY, which is not offered.")

    @field_validator("mode")
    @classmethod
    def _no_copy(cls, mode: str) -> str:
        if mode == "COPY":
            raise ValueError(COPY_REFUSED)
        return mode

    @field_validator("copy_inputs")
    @classmethod
    def _no_copy_inputs(cls, copy_inputs: dict[str, Any] | None) -> dict[str, Any] | None:
        if copy_inputs:
            raise ValueError(f"copy_inputs go with mode COPY, which is not offered ({COPY_REFUSED})")
        return None


VARCHAR = "VARCHAR(65535)"
"""Redshift's longest VARCHAR (its TEXT is VARCHAR(256)): what PostHog gives every text column."""
JSON_COLUMNS = frozenset({"properties", "set", "set_once", "person_properties"})
"""The columns `properties_data_type` types (PostHog's `known_super_columns`)."""
EVENT_TYPES = {
    "uuid": "VARCHAR(200)", "event": "VARCHAR(200)", "properties": "", "elements": VARCHAR, "set": "", "set_once": "",
    "distinct_id": "VARCHAR(200)", "team_id": "INTEGER", "ip": "VARCHAR(200)", "site_url": "VARCHAR(200)",
    "timestamp": "TIMESTAMP WITH TIME ZONE",
}  # fmt: skip
"""PostHog's Redshift events table; "" is `properties_data_type`'s type."""
MODEL_TYPES = {"uuid": VARCHAR, "text": VARCHAR, "bigint": "BIGINT", "float": "DOUBLE PRECISION",
               "boolean": "BOOLEAN", "timestamp": "TIMESTAMPTZ", "text_list": "SUPER", "json": ""}  # fmt: skip
"""Persons and sessions, typed as PostHog types them from their Arrow types (a list of text is SUPER)."""

MARKS = "bx_run_marks"
"""The table, beside the target, where each apply records its run."""
APPLY_TRIES = 8
"""How often an apply refused by a concurrent one (a serialization failure) is tried before the attempt fails."""
MAX_PARAMETERS = 32767
"""The most parameters one statement takes (the protocol's count is 16 bits)."""
MAX_STATEMENT_BYTES = 8 * 2**20
"""The most data one INSERT carries: half of Redshift's 16 MB statement limit."""


def column_types(model: str, properties_data_type: str) -> dict[str, str]:
    """The columns PostHog's Redshift export creates for `model`, with their types (`_inserted_at` is not one)."""
    json_type = "SUPER" if properties_data_type == "super" else VARCHAR
    if model == "events":
        return {column: kind or json_type for column, kind in EVENT_TYPES.items()}
    types = {}
    for column, kind in POSTGRES_SCHEMAS[model].items():
        if column != "_inserted_at":
            types[column] = MODEL_TYPES[kind] or (json_type if column in JSON_COLUMNS else VARCHAR)
    return types


def family(sql_type: str) -> str:
    """The kind of values a column type holds, whatever its length or precision: text, super, integer, float,
    boolean, timestamp; else the type itself."""
    sql_type = sql_type.lower()
    if sql_type.startswith(("varchar", "character", "text", "char", "bpchar", "nvarchar")):
        return "text"
    if sql_type in ("smallint", "integer", "int", "int2", "int4", "int8", "bigint"):
        return "integer"
    if sql_type in ("double precision", "real", "float", "float4", "float8") or sql_type.startswith("numeric"):
        return "float"
    if sql_type.startswith("timestamp"):
        return "timestamp"
    return sql_type  # super, boolean, or one this export never writes


ACCEPTS = {"text": {"text"}, "integer": {"integer", "float"}, "float": {"float"}, "boolean": {"boolean"},
           "timestamp": {"timestamp"}, "json": {"super", "text"}}  # fmt: skip
"""Which families of the target's columns take what this export writes (a family, or JSON)."""


def json_columns(wanted: dict[str, str]) -> frozenset[str]:
    """The columns that hold JSON: SUPER or text, as the target has them."""
    return frozenset(c for c, kind in wanted.items() if kind == "SUPER" or c in JSON_COLUMNS)


def conflicts(wanted: dict[str, str], held: dict[str, str]) -> list[str]:
    """The target's columns (name: type) that cannot take what this export writes into them, as sentences."""
    found, json = [], json_columns(wanted)
    for column, kind in wanted.items():
        writes = "json" if column in json else family(kind)
        if column in held and family(held[column]) not in ACCEPTS[writes]:
            found.append(f"column {column} is {held[column]}, where this export writes {kind}")
    return found


def stage_types(wanted: dict[str, str], held: dict[str, str]) -> dict[str, str]:
    """The stage's columns: what this export writes, a JSON column as the target holds it (SUPER or text)."""
    json = json_columns(wanted)
    return {
        column: ("SUPER" if family(held.get(column, kind)) == "super" else VARCHAR) if column in json else kind
        for column, kind in wanted.items()
    }


def table(schema: str, name: str) -> str:
    return f"{quote(schema)}.{quote(name)}"


def create_table(target: str, types: dict[str, str], if_not_exists: bool = True) -> str:
    definition = ", ".join(f"{quote(column)} {kind}" for column, kind in types.items())
    return f"CREATE TABLE {'IF NOT EXISTS ' if if_not_exists else ''}{target} ({definition})"


def drop_table(name: str) -> str:
    return f"DROP TABLE IF EXISTS {name}"


def add_column(target: str, column: str, kind: str) -> str:
    return f"ALTER TABLE {target} ADD COLUMN {quote(column)} {kind}"


def create_marks(schema: str) -> str:
    return create_table(table(schema, MARKS), {"target_table": "VARCHAR(300)", "run_id": "VARCHAR(200)",
                                               "records": "BIGINT", "applied_at": "TIMESTAMPTZ"})  # fmt: skip


def find_mark(schema: str) -> str:
    return f"SELECT 1 FROM {table(schema, MARKS)} WHERE target_table = $1 AND run_id = $2 AND records = $3"


def insert_mark(schema: str) -> str:
    return f"INSERT INTO {table(schema, MARKS)} (target_table, run_id, records, applied_at) VALUES ($1, $2, $3, $4)"


HELD_COLUMNS = """SELECT column_name, COALESCE(domain_name, data_type) FROM information_schema.columns
                  WHERE table_schema = $1 AND table_name = $2"""
"""The target's columns and their types (on PostgreSQL, SUPER is a domain: its name is the type)."""
MAY_CREATE = "SELECT has_schema_privilege($1, 'CREATE')"
MAY_INSERT = "SELECT has_table_privilege($1, 'INSERT')"
MAY_DELETE = "SELECT has_table_privilege($1, 'DELETE')"
STAGES = """SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE 'bx%'"""


def insert_rows(stage: str, types: dict[str, str], rows: int) -> str:
    """`rows` rows of parameters, a SUPER column's parsed from its JSON text."""
    values, kinds = [], list(types.values())
    for row in range(rows):
        first = row * len(kinds) + 1
        row_values = (f"JSON_PARSE(${first + i})" if k == "SUPER" else f"${first + i}" for i, k in enumerate(kinds))
        values.append(", ".join(row_values))
    columns = ", ".join(quote(column) for column in types)
    return f"INSERT INTO {stage} ({columns}) VALUES ({'), ('.join(values)})"


USER_ERRORS = (*POSTGRES_USER_ERRORS, asyncpg.StringDataRightTruncationError, asyncpg.InvalidTextRepresentationError,
               asyncpg.FeatureNotSupportedError)  # fmt: skip
"""PostHog's list of what only the user can fix: beside PostgreSQL's, a value too long for its VARCHAR, a table
whose columns do not take the values, a feature the cluster lacks."""


def _values(batch: pa.RecordBatch, types: dict[str, str]) -> list[list[Any]]:
    """The batch's columns as Python values, in `types`' order: JSON and lists as JSON text, uuids as text."""
    by_name = dict(zip(batch.schema.names, batch.columns, strict=True))
    columns = []
    for name in types:
        column = by_name.get(name, pa.nulls(batch.num_rows))
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = json_values(column)
        elif is_extension(column.type, "arrow.uuid"):
            column = uuid_strings(column)
        elif isinstance(column, pa.ExtensionArray):
            column = column.storage
        elif pa.types.is_timestamp(column.type) and column.type.tz is not None:
            columns.append(_utc_datetimes(column))
            continue
        columns.append(column.to_pylist())
    return columns


def _utc_datetimes(column: pa.Array) -> list[datetime | None]:
    """Zoned timestamps as datetimes in UTC (`datetime.UTC`). pyarrow's own `to_pylist` looks the zone up by its
    name for every value (in a profile of bench.export, about a sixth of the Redshift worker's samples), and asyncpg
    then asks that zone for each value's offset."""
    naive = pc.cast(pc.cast(column, pa.timestamp("us", "UTC")), pa.timestamp("us"))  # the same instants, unzoned
    values = naive.to_numpy(zero_copy_only=False).astype(object)  # datetimes made in C; None for null
    return [None if value is None else value.replace(tzinfo=UTC) for value in values]


def _rows_per_statement(batch: pa.RecordBatch, columns: int) -> int:
    by_parameters = max(1, MAX_PARAMETERS // columns)
    by_bytes = max(1, MAX_STATEMENT_BYTES * max(batch.num_rows, 1) // max(batch.nbytes, 1))
    return min(by_parameters, by_bytes)


class RedshiftWriter(StagedWriter):
    """Stage then apply (`staging`) with Redshift's statements: the stage is a table beside the target, filled by
    batched INSERTs; the apply is one transaction that also records the run's mark (see the module)."""

    def __init__(self, config: RedshiftConfig, request: WriteRequest) -> None:
        if request.model not in KEYS:
            raise DestinationUserError(f"the Redshift destination does not export the {request.model} model")
        super().__init__(request)
        self.config = config
        self.context = request.context
        self.types = column_types(request.model, config.properties_data_type)
        self.schema = config.schema_name
        self.target = table(self.schema, config.table_name)
        self.mark_target = f"{self.schema}.{config.table_name}"
        self.stage_types: dict[str, str] = {}
        self.records = 0
        """How many records this attempt staged (some may wait in `_held` until the apply): the mark says how many
        the run applied."""
        self._held: list[tuple[Any, ...]] = []
        """Rows loaded and not inserted yet: fewer than an INSERT takes (`_per_statement`)."""
        self._per_statement = 0
        self._inserts: dict[int, PreparedStatement] = {}
        """The INSERT of n rows, by n: written and prepared once. asyncpg's own cache keeps no statement longer
        than 15 KB, and a full INSERT is about 250 KB: the server parsed it, and the worker decoded its 32,000
        parameter types, for every statement."""
        self._conn: asyncpg.Connection | None = None

    @contextlib.contextmanager
    def _user_errors(self) -> Iterator[None]:
        try:
            yield
        except USER_ERRORS as error:
            raise DestinationUserError(f"cannot write to {self.mark_target} on Redshift: {error}") from error

    def _connection(self) -> asyncpg.Connection:
        assert self._conn is not None, "open() comes first"
        return self._conn

    async def open(self) -> None:
        self._conn = await connect(self.config, self.context)
        with self._user_errors():
            held = await self._prepare_target(self._conn)
            await self._conn.execute(create_marks(self.schema))
        self.stage_types = stage_types(self.types, held)

    async def _prepare_target(self, conn: asyncpg.Connection) -> dict[str, str]:
        """Create the target when missing, add the columns it lacks; its columns' types. A column that cannot take
        what this export writes is the user's to fix, named."""
        held = dict(await conn.fetch(HELD_COLUMNS, self.schema, self.config.table_name))
        if not held:
            await conn.execute(create_table(self.target, self.types))
            return dict(self.types)
        found = conflicts(self.types, held)
        if found:
            raise DestinationUserError(f"the table {self.mark_target} does not fit this export: {'; '.join(found)}")
        for column, kind in self.types.items():
            if column not in held:
                await conn.execute(add_column(self.target, column, kind))
                held[column] = kind
        return held

    async def stale_stages(self, prefix: str) -> Sequence[str]:
        found = await self._connection().fetch(STAGES, self.schema)
        return [row[0] for row in found if row[0].startswith(prefix)]

    async def applied(self, mark: str) -> bool:
        """Whether the run applied the records this attempt staged. Before anything is staged that is not known,
        so the attempt stages: an attempt that stages the same records as the apply that landed applies nothing,
        one that stages others (it resumed a shorter attempt) applies them, by key."""
        if not self.records:
            return False
        with self._user_errors():
            return bool(await self._connection().fetchval(find_mark(self.schema), self.mark_target, mark, self.records))

    async def create_stage(self, stage: str) -> None:
        with self._user_errors():
            await self._connection().execute(create_table(table(self.schema, stage), self.stage_types, False))

    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        """Insert the batch's rows in INSERTs of `per_statement` rows; the rows that do not fill one wait for the
        next batch (or the apply), so that every INSERT but the last has the same length and is prepared once."""
        if batch.num_rows == 0:
            return
        fits = _rows_per_statement(batch, len(self.stage_types))
        self._per_statement = min(self._per_statement, fits) if self._per_statement else fits
        self._held.extend(zip(*_values(batch, self.stage_types), strict=True))
        self.records += batch.num_rows
        while len(self._held) >= self._per_statement:
            await self._insert_held(stage, self._per_statement)

    async def _insert_held(self, stage: str, rows: int) -> None:
        """Insert the first `rows` rows held."""
        if (statement := self._inserts.get(rows)) is None:
            if len(self._inserts) >= 8:  # statements of other lengths: keep a few
                self._inserts.clear()
            sql = insert_rows(table(self.schema, stage), self.stage_types, rows)
            with self._user_errors():
                statement = self._inserts[rows] = await self._connection().prepare(sql)
        with self._user_errors():
            await statement.fetch(*chain.from_iterable(self._held[:rows]))
        del self._held[:rows]
        if not self._held:
            self._per_statement = 0

    async def apply(self, stage: str, mark: str) -> None:
        """One serializable transaction, as Redshift runs every transaction: of two applies to the table at once
        (two intervals of a backfill) one is refused, where PostgreSQL's default isolation would keep two rows of
        a key. The refused one is tried again, its stage still there, after a pause that grows."""
        if self._held:  # the last rows, fewer than an INSERT takes
            await self._insert_held(stage, len(self._held))
        conn = self._connection()
        statements = apply_statements(self.target, table(self.schema, stage), list(self.types), self.rule)
        for attempt in range(1, APPLY_TRIES + 1):
            try:
                with self._user_errors():
                    async with conn.transaction(isolation="serializable"):
                        for statement in statements:
                            await conn.execute(statement)
                        mark_row = (self.mark_target, mark, self.records, datetime.now(UTC))
                        await conn.execute(insert_mark(self.schema), *mark_row)
                return
            except asyncpg.SerializationError:
                if attempt == APPLY_TRIES:
                    raise  # retried with the attempt
                await asyncio.sleep(random.uniform(0.1, 0.5) * attempt)

    async def drop_stage(self, stage: str) -> None:
        if self._conn is not None and not self._conn.is_closed():
            await self._conn.execute(drop_table(table(self.schema, stage)))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()


def _model_of(held: dict[str, str]) -> str:
    """The model a table holds, by its columns (a check does not know the export's model)."""
    return "sessions" if "session_id" in held else "persons" if "person_version" in held else "events"


async def _table_writable(config: RedshiftConfig, context: Context) -> None:
    """The user may create the stage (and the table) in the schema, and write the table if it exists, whose
    columns take what the export writes."""
    conn = await connect(config, context)
    target = f"{config.schema_name}.{config.table_name}"
    try:
        if not await conn.fetchval(MAY_CREATE, config.schema_name):
            raise DestinationUserError(f"user {config.user} may not create tables in the schema {config.schema_name}")
        held = dict(await conn.fetch(HELD_COLUMNS, config.schema_name, config.table_name))
        if held:
            quoted = table(config.schema_name, config.table_name)
            for privilege, query in (("insert", MAY_INSERT), ("delete", MAY_DELETE)):
                if not await conn.fetchval(query, quoted):
                    raise DestinationUserError(f"user {config.user} may not {privilege} in {target}")
            found = conflicts(column_types(_model_of(held), config.properties_data_type), held)
            if found:
                raise DestinationUserError(f"the table {target} does not fit this export: {'; '.join(found)}")
    except USER_ERRORS as error:
        raise DestinationUserError(str(error)) from error
    finally:
        await conn.close()


DESTINATION = Destination(
    type="Redshift",
    config=RedshiftConfig,
    open_writer=RedshiftWriter,
    steps=(
        Step[RedshiftConfig]("Connect", "Connect to the cluster with the credentials given.", _connects),
        Step("Table is writable", "The table (and a stage beside it) can be created, or written.", _table_writable),
    ),
    models=tuple(KEYS),
    custom_columns=False,  # the table has the model's columns
    event_layout="postgres",
)
