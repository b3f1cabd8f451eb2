"""`Snowflake`: rows into a table of the user's Snowflake, exactly once per record.

The config is PostHog's (`account`, `user`, `authentication_type` password or keypair, `database`, `warehouse`,
`schema`, `table_name`, `role`), and so is the table: created when missing with PostHog's columns and types
(`snowflake_sql.TABLES`), given a column it lacks (`ALTER TABLE ADD COLUMN`), refused when a column's type cannot
take what is written (the error names the column and both types).

Exactly once, by stage then apply (`staging`): each attempt stages the interval in a transient table of its own
(Parquet files `PUT` to that table's stage, then `COPY INTO` it) and applies it in one `MERGE` (events replace
rows by `uuid`; persons by `(team_id, distinct_id)` and sessions by `(team_id, session_id)` replace a row when a
version or `end_timestamp` is newer), so an apply run twice leaves what one left. The apply is then marked in
`batch_export_runs` (run, table, records): a retried attempt of a run whose apply of as many records landed finds
the mark and applies nothing. The stage table is dropped on success and on failure, and an attempt first drops the stage
tables an earlier attempt of the run left (a worker lost mid-load).

The connector is synchronous: each call runs in a thread, so the event loop heartbeats meanwhile. It connects to
`BATCH_EXPORTS_SNOWFLAKE_URL` when set (fakesnow on loopback in the tests; `http://` only to a private address
where private destinations are allowed: a password never travels in clear to the internet), else to
`https://{account}.snowflakecomputing.com`. Every connection it makes (login, queries, the stage's uploads, to
whatever storage a real account's stage lives in) goes through the service's egress proxy, which checks each
address; the endpoint is checked before anything connects. It reads no connection file, sends no telemetry,
asks no OCSP responder (certificates are still verified) and probes no cloud metadata service.
"""

import asyncio
import contextlib
import io
import logging
import re
import secrets
import tempfile
from collections.abc import Callable
from typing import Any, ClassVar, Literal, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import snowflake.connector
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from pydantic import ConfigDict, Field, ValidationInfo, field_validator
from snowflake.connector import errors as sf_errors

from connectors.columns import json_values
from connectors.destinations.base import (
    Context,
    Destination,
    DestinationConfig,
    DestinationUserError,
    Step,
    WriteRequest,
)
from connectors.destinations.network.endpoints import ParsedEndpoint, parse_endpoint
from connectors.destinations.network.hosts import resolve
from connectors.destinations.network.proxy import Route, route_for
from connectors.destinations.tables.rows import plain
from connectors.destinations.warehouses import snowflake_sql as sql
from connectors.destinations.warehouses.postgres import plain_text_allowed
from connectors.destinations.warehouses.staging import STAGE_PREFIX, StagedWriter

logger = logging.getLogger(__name__)

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_$-]{0,254}$"
_ACCOUNT = r"^[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9_-]{0,61}[A-Za-z0-9])?){0,3}$"
DOMAIN = ".snowflakecomputing.com"
FILE_BYTES = 32 * 2**20
"""Arrow bytes written into one Parquet file (on disk) before it is uploaded."""


def load_private_key(pem: str, passphrase: str | None) -> bytes:
    """The PEM private key as the DER bytes the connector signs with; ValueError naming what is wrong (never the
    key)."""
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=passphrase.encode() if passphrase else None)
    except TypeError as error:
        if passphrase:
            raise ValueError("the private key is not encrypted: leave private_key_passphrase out") from None
        raise ValueError("the private key is encrypted: give its private_key_passphrase") from error
    except (ValueError, UnsupportedAlgorithm):
        if passphrase:
            raise ValueError(
                "cannot read the private key with this passphrase (a PEM key, and its passphrase)"
            ) from None
        raise ValueError("is not a PEM private key") from None
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())  # fmt: skip


class SnowflakeConfig(DestinationConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset({"password", "private_key", "private_key_passphrase"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"account"})
    """The account names the host the password or the key's signature goes to."""

    account: str = Field(max_length=255, description="The account identifier (`orgname-account` or a locator).")
    user: str = Field(min_length=1, max_length=255)
    authentication_type: Literal["password", "keypair"] = "password"
    database: str = Field(pattern=_IDENTIFIER)
    warehouse: str = Field(pattern=_IDENTIFIER)
    schema_name: str = Field(alias="schema", pattern=_IDENTIFIER)
    table_name: str = Field(pattern=_IDENTIFIER, description="Created if missing, with PostHog's columns.")
    role: str | None = Field(None, pattern=_IDENTIFIER)
    private_key_passphrase: str | None = Field(None, max_length=1000)
    password: str | None = Field(None, max_length=1000, validate_default=True)
    private_key: str | None = Field(None, max_length=20_000, validate_default=True,
                                    description="A PEM private key (keypair authentication).")  # fmt: skip

    @field_validator("account")
    @classmethod
    def _account(cls, value: str) -> str:
        value = value.lower().removesuffix(DOMAIN)
        if not re.match(_ACCOUNT, value):
            raise ValueError("must be a Snowflake account identifier, such as myorg-myaccount or xy12345.us-east-2.aws")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("authentication_type") == "password" and not value:
            raise ValueError("is required when authentication_type is password")
        return value

    @field_validator("private_key")
    @classmethod
    def _private_key(cls, value: str | None, info: ValidationInfo) -> str | None:
        if info.data.get("authentication_type") == "keypair":
            if not value:
                raise ValueError("is required when authentication_type is keypair")
            load_private_key(value, info.data.get("private_key_passphrase"))
        return value


USER_ERRORS = (sf_errors.ProgrammingError, sf_errors.IntegrityError, sf_errors.DataError,
               sf_errors.NotSupportedError, sf_errors.ForbiddenError, sf_errors.BadRequest)  # fmt: skip
"""What only the user can fix: SQL the account refuses (a missing object, a privilege, a type), a refused login."""


def is_user_error(error: BaseException) -> bool:
    """PostHog's reading too: a plain DatabaseError is a refused login (a network failure is an OperationalError)."""
    return isinstance(error, USER_ERRORS) or type(error) is sf_errors.DatabaseError


URL_SETTING = "snowflake_url"
"""`BATCH_EXPORTS_SNOWFLAKE_URL`, as destinations are given it (`Context.setting`)."""


def endpoint_of(config: SnowflakeConfig, context: Context) -> ParsedEndpoint:
    """The setting's endpoint, else the account's own host."""
    if not (url := context.setting(URL_SETTING)):
        return parse_endpoint(f"https://{config.account}{DOMAIN}", path=False)
    try:
        return parse_endpoint(url, path=False)
    except ValueError as error:
        raise RuntimeError(f"BATCH_EXPORTS_SNOWFLAKE_URL {error}") from None


T = TypeVar("T")
NO_SUCH_OBJECT = 2003
"""Snowflake's error number for an object that does not exist (or that the role may not see)."""


class Session:
    """One connection of the connector, used from threads one call at a time."""

    def __init__(self, config: SnowflakeConfig, context: Context) -> None:
        self.config = config
        self.context = context
        self.route: Route | None = None
        self.conn: Any = None

    async def open(self) -> "Session":
        config, context = self.config, self.context
        endpoint = endpoint_of(config, context)
        addresses = await resolve(endpoint.host, endpoint.port, allow_private=context.allow_private, field="account")
        if endpoint.scheme == "http" and not all(plain_text_allowed(a, context) for a in addresses):
            raise DestinationUserError(
                f"{endpoint.url} is not https: credentials never travel in clear to an address on the internet"
            )
        self.route = route_for(context)
        key = None
        if config.authentication_type == "keypair":
            assert config.private_key is not None
            key = load_private_key(config.private_key, config.private_key_passphrase)
        seconds = max(1, int(context.limits.call_seconds))
        args: dict[str, Any] = dict(
            account=config.account, user=config.user, database=config.database, schema=config.schema_name,
            warehouse=config.warehouse, role=config.role, host=endpoint.host, port=endpoint.port,
            protocol=endpoint.scheme, login_timeout=seconds, network_timeout=seconds, socket_timeout=seconds,
            # Every connection through the egress proxy; no_proxy set so the worker's NO_PROXY is not read.
            proxy_host="127.0.0.1", proxy_port=str(self.route.proxy.port), proxy_user=self.route.name,
            proxy_password=self.route.proxy.secret, no_proxy=".invalid",
            # Nothing beside the endpoint: no OCSP responder, no CRL, no cloud metadata probe, no telemetry.
            disable_ocsp_checks=True, cert_revocation_check_mode="DISABLED", platform_detection_timeout_seconds=0.0,
            log_imported_packages_in_telemetry=False, client_store_temporary_credential=False,
            session_parameters={"CLIENT_TELEMETRY_ENABLED": False, "QUERY_TAG": "batch-exports"},
            application="batch_exports", autocommit=True,
        )  # fmt: skip
        if key is not None:
            args |= {"authenticator": "SNOWFLAKE_JWT", "private_key": key}
        else:
            args["password"] = config.password
        self.conn = await self.call(lambda: snowflake.connector.connect(**args), "connect to Snowflake")
        self.conn.telemetry_enabled = False
        return self

    async def call(self, work: Callable[[], T], doing: str) -> T:
        """`work` in a thread; the account's refusals as the user's error, with its words."""
        try:
            return await asyncio.to_thread(work)
        except sf_errors.Error as error:
            if self.route is not None and (why := self.route.refusal()):
                raise DestinationUserError(f"cannot {doing}: {why}") from error
            if is_user_error(error):
                raise DestinationUserError(f"cannot {doing}: {str(error).strip()}") from error
            raise

    async def execute(self, statement: str, params: dict[str, Any] | None = None, *, stream: Any = None,
                      doing: str = "") -> tuple[list[tuple[Any, ...]], list[Any]]:  # fmt: skip
        """The statement's rows and its columns' description."""

        def run() -> tuple[list[tuple[Any, ...]], list[Any]]:
            with self.conn.cursor() as cursor:
                cursor.execute(statement, params, file_stream=stream)
                return cursor.fetchall(), list(cursor.description or [])

        return await self.call(run, doing or f"run {statement.split(' (')[0][:80]}")

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            try:
                await asyncio.to_thread(conn.close)
            except sf_errors.Error as error:
                logger.info("closing a Snowflake connection: %s", self.config.redact(str(error)))
        if self.route is not None:
            self.route.close()


def column_kinds(description: list[Any]) -> dict[str, str]:
    """Each column's kind, as the connector names it (TEXT, FIXED, VARIANT, TIMESTAMP_NTZ, ...)."""
    from snowflake.connector.constants import FIELD_ID_TO_NAME

    return {column.name: FIELD_ID_TO_NAME.get(column.type_code, str(column.type_code)) for column in description}


async def prepare_table(session: Session, model: str) -> dict[str, str]:
    """The target table ready for the model's columns: created when missing, given a column it lacks; the
    columns written, with their types. A column of a kind that cannot take what is written is the user's error."""
    config, wanted = session.config, sql.TABLES[model]
    table = config.table_name
    await session.execute(sql.create_table(table, wanted), doing=f"create the table {table}")
    _, description = await session.execute(sql.describe(table), doing=f"read the columns of {table}")
    found = column_kinds(description)
    conflicts = [f"{name} is {found[name]}, not {kind}" for name, kind in wanted.items()
                 if name in found and found[name] not in sql.FAMILIES[kind]]  # fmt: skip
    if conflicts:
        raise DestinationUserError(
            f"the table {table} does not take this export's columns: {'; '.join(conflicts)}. "
            "Export to a new table, or change the column's type"
        )
    for name, kind in wanted.items():
        if name not in found:
            await session.execute(sql.add_column(table, name, kind), doing=f"add the column {name} to {table}")
    return wanted


def stage_schema(columns: dict[str, str]) -> pa.Schema:
    """The stage's columns in Parquet: JSON as its text, timestamps as UTC text (read back with a cast, so no
    Parquet logical type is needed), the rest as Arrow's plain types."""
    return pa.schema([(name, _ARROW[kind]) for name, kind in columns.items()])


def stage_rows(batch: pa.RecordBatch, columns: dict[str, str]) -> pa.Table:
    """The batch as rows of the stage's columns (`stage_schema`)."""
    by_name = {sql.RENAMED.get(name, name): column for name, column in zip(batch.schema.names, batch.columns,
                                                                             strict=True)}  # fmt: skip
    arrays = [_stage_column(by_name.get(name), kind, batch.num_rows) for name, kind in columns.items()]
    return pa.Table.from_arrays(arrays, schema=stage_schema(columns))


class StageFile:
    """One Parquet file of the stage's columns, written batch by batch to a temporary file: the batches are not
    kept, nor the file in memory, until it is put to the stage."""

    def __init__(self, columns: dict[str, str]) -> None:
        self.columns = columns
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by `discard`)
        self._parquet = pq.ParquetWriter(self.file, stage_schema(columns), compression="snappy")
        self.arrow_bytes = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._parquet.write_table(stage_rows(batch, self.columns))
        self.arrow_bytes += batch.nbytes

    def finish(self) -> int:
        """Close the Parquet file and rewind it for reading; its size."""
        self._parquet.close()
        size = self.file.tell()
        self.file.seek(0)
        return size

    def discard(self) -> None:
        with contextlib.suppress(Exception):
            self._parquet.close()
        self.file.close()


def parquet_file(batches: list[pa.RecordBatch], columns: dict[str, str]) -> bytes:
    """The batches as one Parquet file of the stage's columns, in memory (a small file: the checks')."""
    sink = io.BytesIO()
    with pq.ParquetWriter(sink, stage_schema(columns), compression="snappy") as parquet:
        for batch in batches:
            parquet.write_table(stage_rows(batch, columns))
    return sink.getvalue()


_ARROW = {"STRING": pa.string(), "VARIANT": pa.string(), "ARRAY": pa.string(), "TIMESTAMP": pa.string(),
          "INTEGER": pa.int64(), "FLOAT": pa.float64(), "BOOLEAN": pa.bool_()}  # fmt: skip


def _stage_column(column: pa.Array | None, kind: str, rows: int) -> pa.Array:
    if column is None:
        return pa.nulls(rows, _ARROW[kind])
    if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
        column = json_values(column)
    column = plain(column)
    if kind == "TIMESTAMP" and pa.types.is_timestamp(column.type):
        return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")  # microseconds included, in UTC
    return pc.cast(column, _ARROW[kind])


class SnowflakeWriter(StagedWriter):
    """Stage then apply (`staging`): the stage is a transient table loaded from Parquet files put to its own
    stage; the apply is one `MERGE`, then the run's mark. The two are separate statements (fakesnow runs no
    write inside a transaction), which is safe because the `MERGE` is idempotent: an attempt lost between them
    leaves a mark missing, and the next attempt's `MERGE` of the same rows changes nothing before it marks."""

    def __init__(self, config: SnowflakeConfig, request: WriteRequest) -> None:
        if request.model not in sql.TABLES:
            raise DestinationUserError(f"the Snowflake destination does not export the {request.model} model")
        super().__init__(request)
        self.config = config
        self.request = request
        self.table = config.table_name
        self.records = 0
        self._session: Session | None = None
        self._columns: dict[str, str] = {}
        self._file: StageFile | None = None
        self._staging = False

    def _open_session(self) -> Session:
        assert self._session is not None, "open() comes first"
        return self._session

    async def open(self) -> None:
        self._session = await Session(self.config, self.request.context).open()
        self._columns = await prepare_table(self._session, self.request.model)
        await self._session.execute(sql.create_marks(), doing=f"create the table {sql.MARKS_TABLE}")

    async def close(self) -> None:
        session, self._session, file, self._file = self._session, None, self._file, None
        if file is not None:
            file.discard()
        if session is not None:
            await session.close()

    async def stale_stages(self, prefix: str) -> list[str]:
        rows, _ = await self._open_session().execute(sql.stale_stages(prefix), doing="list stage tables")
        return [row[0] for row in rows]

    async def applied(self, mark: str) -> bool:
        """Whether an apply of the run with as many records as this attempt staged landed. Asked before staging
        (when nothing is counted yet) it answers no, so the attempt stages: an attempt that stopped part-way
        (its apply marked with fewer records) is followed by one that applies the rest, not by nothing."""
        if not self._staging:
            return False
        found, _ = await self._open_session().execute(
            sql.find_mark(), {"run_id": mark, "table_name": self.table}, doing="read the marks of earlier applies"
        )
        return any(row[0] == self.records for row in found)

    async def create_stage(self, stage: str) -> None:
        self._staging = True
        await self._open_session().execute(sql.create_stage_table(stage, self._columns), doing="create a stage table")

    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        if self._file is None:
            self._file = StageFile(self._columns)
        await asyncio.to_thread(self._file.write, batch)
        self.records += batch.num_rows
        if self._file.arrow_bytes >= FILE_BYTES:
            await self._upload(stage)

    async def _upload(self, stage: str) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            size = await asyncio.to_thread(file.finish)
            name = f"part-{self.files}.parquet"
            rows, _ = await self._open_session().execute(
                sql.put(stage, name), stream=file.file, doing="upload to the stage"
            )
        finally:
            file.discard()
        if not rows or rows[0][6] != "UPLOADED":
            raise DestinationUserError(
                f"Snowflake did not take the file {name}: {rows[0][6:8] if rows else 'no answer'}"
            )
        self.files += 1
        self.bytes_written += size

    async def apply(self, stage: str, mark: str) -> None:
        session = self._open_session()
        await self._upload(stage)
        if self.files:
            loaded, _ = await session.execute(sql.copy_into(stage, self._columns), doing="load the stage")
            failed = [row for row in loaded if len(row) > 1 and row[1] != "LOADED"]
            if failed:
                raise DestinationUserError(f"Snowflake did not load {failed[0][0]}: {failed[0][1:7]}")
            statement = sql.merge(self.table, stage, list(self._columns), self.rule.key, self.rule.newer,
                                  self.rule.newer_condition)  # fmt: skip
            await session.execute(statement, doing=f"merge into {self.table}")
        request = self.request
        await session.execute(sql.add_mark(), {"run_id": mark, "table_name": self.table, "records": self.records,
                              "batch_export_id": request.batch_export_id, "start": request.start.isoformat(),
                              "end": request.end.isoformat()}, doing="mark the apply")  # fmt: skip

    async def drop_stage(self, stage: str) -> None:
        await self._open_session().execute(sql.drop_table(stage), doing="drop the stage table")


async def _connects(config: SnowflakeConfig, context: Context) -> None:
    session = await Session(config, context).open()
    try:
        await session.execute("SELECT CURRENT_DATABASE()", doing="run a query")
    finally:
        await session.close()


async def _table_writable(config: SnowflakeConfig, context: Context) -> None:
    """Rows can be written to the table (an insert of none: it changes nothing), or it is missing and will be
    created; a file can be uploaded to a stage table's stage and loaded from it. The stage table is dropped."""
    session = await Session(config, context).open()
    stage = f"{STAGE_PREFIX}check_{secrets.token_hex(4)}"
    columns = sql.TABLES["events"]
    try:
        if await table_exists(session, config.table_name):
            await session.execute(sql.insert_nothing(config.table_name), doing=f"write to {config.table_name}")
        await session.execute(sql.create_stage_table(stage, columns), doing="create a stage table")
        data = parquet_file([], columns)
        await session.execute(sql.put(stage, "check.parquet"), stream=io.BytesIO(data), doing="upload to a stage")
        await session.execute(sql.copy_into(stage, columns), doing="load a stage table")
    finally:
        try:
            await session.execute(sql.drop_table(stage), doing="drop the stage table")
        finally:
            await session.close()


async def table_exists(session: Session, table: str) -> bool:
    try:
        await session.execute(sql.describe(table), doing=f"read the columns of {table}")
    except DestinationUserError as error:
        if isinstance(error.__cause__, sf_errors.ProgrammingError) and error.__cause__.errno == NO_SUCH_OBJECT:
            return False
        raise
    return True


DESTINATION = Destination(
    type="Snowflake",
    config=SnowflakeConfig,
    open_writer=SnowflakeWriter,
    steps=(
        Step("Connect", "Log in to the account with the credentials given and run a query.", _connects),
        Step(
            "Table is writable",
            "The table can be created, or takes the export's columns; a stage can be loaded.",
            _table_writable,
        ),
    ),
    models=tuple(sql.TABLES),
    custom_columns=False,  # PostHog's table: the model's columns
    event_layout="postgres",  # PostHog's warehouse columns (`set`, `set_once` are written as people_set, ...)
)
