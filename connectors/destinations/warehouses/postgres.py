"""`Postgres`: rows into a table of the user's PostgreSQL, exactly once per record.

Stage then apply (`staging`): the interval is copied (COPY, as CSV that Arrow writes in native code: no Python
object per row) into a temporary stage table inside one transaction; commit
deletes the target rows with the same keys and inserts the staged ones, then commits: a rerun of the
interval (or of a continued segment) replaces what it wrote before, and a failure leaves nothing. Persons
and sessions replace a row only when the staged one is newer (`person_version` or
`person_distinct_id_version`, `end_timestamp`), as PostHog's PostgreSQL export updates them; applies of one
table take turns, so two runs applying one key at once leave one row, the newer.
The table is created when missing, with the model's column types (for events, the columns PostHog's
PostgreSQL export writes: `sources.events.POSTGRES_COLUMNS`).

A connection reaches only the addresses `hosts` checked (asyncpg is given a numeric address, never the
user's host string, so never a socket path and never a second lookup), and reads nothing of the worker's
environment: no PGPASSWORD, PGPASSFILE or ~/.pgpass, no PGHOST/PGUSER/PGDATABASE, no client certificate
or sslmode from PG* variables or ~/.postgresql. TLS is verified against the system's certificate
authorities and the host name given (encrypted but unverified with `has_self_signed_cert`). A password never
travels in clear: a server that does not offer TLS is refused (a user error, before the password is sent),
unless the address connected to is private (loopback, a private network, ...) and private destinations are
allowed (`BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS`); even then `has_self_signed_cert` asks for TLS. A database that
holds this service's own tables is refused right after connecting, before any statement of the export.
"""

import asyncio
import contextlib
import io
import ssl
from collections.abc import Iterator, Sequence
from typing import Any, ClassVar

import asyncpg
import pyarrow as pa
import pyarrow.csv as pa_csv
from pydantic import ConfigDict, Field

from connectors.columns import json_values
from connectors.destinations.base import (
    Context,
    Destination,
    DestinationConfig,
    DestinationUserError,
    Endpoint,
    Step,
    WriteRequest,
)
from connectors.destinations.network.hosts import HostRefused, allowed_addresses, refusal
from connectors.destinations.warehouses.staging import ApplyRule, StagedWriter
from connectors.sources.schemas import POSTGRES_SCHEMAS

_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class PostgresConfig(DestinationConfig):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset({"user", "password"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"host", "port", "database", "has_self_signed_cert"})
    """Where the user and password go, and how: `has_self_signed_cert` decides whether the server's certificate
    is checked, so whether the password may reach a server that only claims the host's name."""
    server: ClassVar[str] = "PostgreSQL"
    """What the messages call the server (another that speaks PostgreSQL's protocol names itself)."""

    host: str = Field(min_length=1, max_length=253, description="A DNS name or an IP address.")
    port: int = Field(5432, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=63)
    schema_name: str = Field("public", alias="schema", pattern=_IDENTIFIER)
    table_name: str = Field(pattern=_IDENTIFIER, description="Created if missing.")
    user: str = Field(min_length=1, max_length=63)
    password: str = Field("", max_length=1000)
    has_self_signed_cert: bool = False

    def endpoint(self) -> Endpoint | None:
        return Endpoint(self.host, "host", self.port, self.database)


SQL_TYPES = {"uuid": "uuid", "text": "text", "json": "jsonb", "timestamp": "timestamptz", "bigint": "bigint",
             "float": "float8", "boolean": "boolean", "text_list": "jsonb"}  # fmt: skip
"""A list (a session's `urls`) goes in as a JSON array: COPY's CSV has no form for one."""

USER_ERRORS = (
    asyncpg.InvalidPasswordError,
    asyncpg.InvalidAuthorizationSpecificationError,
    asyncpg.InvalidCatalogNameError,
    asyncpg.InsufficientPrivilegeError,
    asyncpg.InvalidSchemaNameError,
    asyncpg.DatatypeMismatchError,
    asyncpg.UndefinedColumnError,
)
"""What only the user can fix: credentials, a missing database or schema, permissions, a table of another shape."""


def quote(identifier: str) -> str:
    """A validated identifier (see PostgresConfig), quoted."""
    return '"' + identifier.replace('"', '""') + '"'


class _ServerNameContext(ssl.SSLContext):
    """A TLS context that checks the certificate against the host name the user gave, whatever address
    (asyncpg passes the numeric one it connects to) the caller names."""

    server_name: str | None = None

    def wrap_bio(self, incoming: Any, outgoing: Any, server_side: bool = False, server_hostname: Any = None,
                 session: Any = None) -> ssl.SSLObject:  # fmt: skip
        return super().wrap_bio(incoming, outgoing, server_side, self.server_name, session)

    def wrap_socket(self, sock: Any, server_side: bool = False, do_handshake_on_connect: bool = True,
                    suppress_ragged_eofs: bool = True, server_hostname: Any = None,
                    session: Any = None) -> ssl.SSLSocket:  # fmt: skip
        return super().wrap_socket(
            sock, server_side, do_handshake_on_connect, suppress_ragged_eofs, self.server_name, session
        )


def tls_context(config: PostgresConfig) -> ssl.SSLContext:
    context = _ServerNameContext(ssl.PROTOCOL_TLS_CLIENT)
    context.server_name = config.host
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if config.has_self_signed_cert:  # encrypted, not authenticated
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    else:
        context.load_default_certs()
    return context


_OWN_TABLES = """SELECT count(*) FROM pg_catalog.pg_class
                 WHERE relname IN ('batch_export_destinations', 'personal_api_keys', 'person_distinct_ids')"""
"""Tables of this service's own databases (its metadata, its event source)."""


async def _connect_to(address: str, config: PostgresConfig, tls: ssl.SSLContext | bool) -> asyncpg.Connection:
    return await asyncpg.connect(
        host=address,  # checked, numeric: asyncpg resolves nothing and opens no socket path
        port=config.port,
        user=config.user,  # never None: None reads PGUSER
        database=config.database,  # never None: None reads PGDATABASE
        password=config.password,  # never None: None reads PGPASSWORD, then PGPASSFILE or ~/.pgpass
        passfile=None,
        ssl=tls,  # a context or False: a mode's name reads PGSSLROOTCERT, PGSSLCERT, ~/.postgresql, ...
        direct_tls=False,
        target_session_attrs="any",
        krbsrvname="postgres",
        gsslib="gssapi",
        server_settings={"application_name": "batch-exports"},
        timeout=30,
    )


def plain_text_allowed(address: str, context: Context) -> bool:
    """Whether a server at `address` may be reached without TLS: only a private one, where they are allowed."""
    return context.allow_private and refusal(address) is not None


async def connect(config: PostgresConfig, context: Context) -> asyncpg.Connection:
    """A connection to the destination, at an address the policy allows, with nothing of the worker's own."""
    addresses = await allowed_addresses(config, context)
    last: Exception | None = None
    for address in addresses:
        try:
            try:
                conn = await _connect_to(address, config, tls_context(config))
            except ConnectionError as error:
                if config.has_self_signed_cert or "rejected SSL upgrade" not in str(error):
                    raise
                if not plain_text_allowed(address, context):
                    raise DestinationUserError(
                        f"{config.server} at {config.host}:{config.port} does not offer TLS: a password is never sent "
                        "to a public address in plain text; enable TLS on the server"
                    ) from error
                conn = await _connect_to(address, config, False)  # the server has no TLS: a private one
        except USER_ERRORS as error:
            raise DestinationUserError(
                f"cannot connect to {config.server} at {config.host}:{config.port}: {error}"
            ) from error
        except ssl.SSLCertVerificationError as error:
            raise DestinationUserError(
                f"cannot connect to {config.server} at {config.host}:{config.port}: its certificate is not trusted "
                f"({error.verify_message}); set has_self_signed_cert if it is self-signed"
            ) from error
        except (OSError, TimeoutError) as error:
            last = error
            continue
        try:
            own = await conn.fetchval(_OWN_TABLES)
        except BaseException:
            await conn.close()
            raise
        if own:
            await conn.close()
            raise HostRefused(
                f"{config.host}:{config.port}/{config.database} is a database of this service itself; "
                "it cannot be a destination",
                "host",
            )
        return conn
    assert last is not None
    raise last


def as_csv(batch: pa.RecordBatch, columns: tuple[str, ...]) -> bytes:
    """The batch's `columns` as COPY's CSV: strings quoted (so an empty one stays empty), a null as nothing,
    timestamps in ISO 8601 with their zone. JSON goes in as the text the source holds, parsed once, by jsonb."""
    by_name = dict(zip(batch.schema.names, batch.columns, strict=True))
    arrays = []
    for name in columns:
        column = by_name.get(name, pa.nulls(batch.num_rows))
        if pa.types.is_list(column.type) or pa.types.is_large_list(column.type):
            column = json_values(column)
        arrays.append(column.storage if isinstance(column, pa.ExtensionArray) else column)
    sink = pa.BufferOutputStream()
    pa_csv.write_csv(pa.table(arrays, names=list(columns)), sink, pa_csv.WriteOptions(include_header=False))
    return sink.getvalue().to_pybytes()


def apply_statements(target: str, stage: str, columns: Sequence[str], rule: ApplyRule) -> list[str]:
    """The apply, in one transaction: drop the staged rows that do not replace the target's (persons, sessions:
    not newer), delete the target's rows of the staged keys, insert the staged rows."""
    statements = []
    if rule.newer:
        same_key = " AND ".join(f"{stage}.{quote(c)} = held.{quote(c)}" for c in rule.key)
        newer = rule.newer_condition(quote, held="held", staged=stage)
        statements.append(f"DELETE FROM {stage} USING {target} AS held WHERE {same_key} AND NOT ({newer})")
    staged_key = " AND ".join(f"{target}.{quote(c)} = staged.{quote(c)}" for c in rule.key)
    statements.append(f"DELETE FROM {target} USING {stage} AS staged WHERE {staged_key}")
    listed = ", ".join(quote(c) for c in columns)
    statements.append(f"INSERT INTO {target} ({listed}) SELECT {listed} FROM {stage}")
    return statements


class PostgresWriter(StagedWriter):
    """Stage then apply (`staging`) in one transaction: the stage is a temporary table dropped when the
    transaction ends, and the apply (`apply_statements`) is its commit. So a lost
    attempt applied all or nothing and left no stage behind, and applying its rows again leaves each record once:
    no mark is kept in the user's database."""

    def __init__(self, config: PostgresConfig, request: WriteRequest) -> None:
        if request.model not in POSTGRES_SCHEMAS:
            raise DestinationUserError(f"the Postgres destination does not export the {request.model} model")
        super().__init__(request)
        self.config = config
        self.context = request.context
        self.types = {column: SQL_TYPES[kind] for column, kind in POSTGRES_SCHEMAS[request.model].items()}
        self.columns = tuple(self.types)
        self.target = f"{quote(config.schema_name)}.{quote(config.table_name)}"
        self._conn: asyncpg.Connection | None = None
        self._transaction: Any = None

    @contextlib.contextmanager
    def _user_errors(self) -> Iterator[None]:
        try:
            yield
        except USER_ERRORS as error:
            raise DestinationUserError(
                f"cannot write to {self.config.schema_name}.{self.config.table_name}: {error}"
            ) from error

    def _connection(self) -> asyncpg.Connection:
        assert self._conn is not None, "open() comes first"
        return self._conn

    async def open(self) -> None:
        self._conn = await connect(self.config, self.context)
        with self._user_errors():
            # Other runs of the export may create it at the same moment, which IF NOT EXISTS does not cover (its
            # catalog rows race: a unique violation, or "type already exists"): they take turns under a lock.
            async with self._conn.transaction():
                await self._conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.target)
                await self._conn.execute(f"CREATE TABLE IF NOT EXISTS {self.target} ({self._definition()})")
            self._transaction = self._conn.transaction()
            await self._transaction.start()

    def _definition(self) -> str:
        return ", ".join(f"{quote(c)} {t}" for c, t in self.types.items())

    async def applied(self, mark: str) -> bool:
        return False  # no mark: the apply is the commit of the transaction that staged (see the class)

    async def create_stage(self, stage: str) -> None:
        with self._user_errors():
            await self._connection().execute(
                f"CREATE TEMPORARY TABLE {quote(stage)} ({self._definition()}) ON COMMIT DROP"
            )

    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        data = await asyncio.to_thread(as_csv, batch, self.columns)
        await self._connection().copy_to_table(stage, source=io.BytesIO(data), columns=self.columns, format="csv")

    async def apply(self, stage: str, mark: str) -> None:
        conn = self._connection()
        with self._user_errors():
            # Applies of one table take turns, each seeing what the one before it wrote: two runs that apply
            # one key at once leave one row, the newer (the lock is the transaction's, released at commit).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", self.target)
            for statement in apply_statements(self.target, quote(stage), self.columns, self.rule):
                await conn.execute(statement)
            await self._transaction.commit()

    async def drop_stage(self, stage: str) -> None:
        pass  # a temporary table, dropped at commit or with the connection

    async def close(self) -> None:
        conn, self._conn, self._transaction = self._conn, None, None
        if conn is not None and not conn.is_closed():
            await conn.close()  # before the commit, this rolls the transaction back


async def _connects(config: PostgresConfig, context: Context) -> None:
    conn = await connect(config, context)
    await conn.close()


async def _table_writable(config: PostgresConfig, context: Context) -> None:
    conn = await connect(config, context)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{config.schema_name}.{config.table_name}")
        if exists:
            allowed = await conn.fetchval("SELECT has_table_privilege($1, 'INSERT, DELETE')", exists)
        else:
            allowed = await conn.fetchval("SELECT has_schema_privilege($1, 'CREATE')", config.schema_name)
        if not allowed:
            what = "insert into and delete from the table" if exists else "create the table in the schema"
            raise DestinationUserError(f"user {config.user} may not {what} {config.schema_name}.{config.table_name}")
    except USER_ERRORS as error:
        raise DestinationUserError(str(error)) from error
    finally:
        await conn.close()


DESTINATION = Destination(
    type="Postgres",
    config=PostgresConfig,
    open_writer=PostgresWriter,
    steps=(
        Step("Connect", "Connect to the database with the credentials given.", _connects),
        Step("Table is writable", "The table can be created, or written and rewritten.", _table_writable),
    ),
    models=tuple(POSTGRES_SCHEMAS),
    custom_columns=False,  # the table has the model's columns
    event_layout="postgres",
)
