"""`BigQuery`: rows into a table of the user's BigQuery dataset, exactly once per record, as PostHog's BigQuery
export writes them (its config fields, its table, its rows).

Stage then apply (`staging`): an attempt loads the interval into a stage table of its own
(`bx_stage_{run}_{attempt}`, expiring after a day should every attempt that could drop it be lost) by load jobs
from Parquet, then applies it in one transaction: a `MERGE` (`bigquery_sql`) and a mark of the run in the
dataset's `bx_run_marks`. A retried attempt whose apply already landed finds the mark and applies nothing again;
before staging, an attempt drops the stages an earlier attempt of the run left; its own stage is dropped when it
ends, applied or not. The target is created when missing (day-partitioned on `timestamp` for events); a
table PostHog created takes the rows as it is (`JSON` or `STRING` JSON columns alike), a column it lacks is added,
and a column of another type fails the run naming both types.

Where the client calls is a setting, never a config: `BATCH_EXPORTS_BIGQUERY_URL` (an emulator, which takes no
credentials, so none are sent), else Google's API with the config's service account. The private key signs a
token request sent to `token_uri`, which must be Google's own token endpoint or the one
`BATCH_EXPORTS_BIGQUERY_TOKEN_URI` names. Every connection (API and token) goes through the process's egress
proxy (`proxy`: the address policy, no redirect, bounded answers); the client's blocking calls run in threads,
each bounded by the call timeout.
"""

import asyncio
import logging
import secrets
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import requests
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from google.api_core.client_options import ClientOptions
from google.api_core.exceptions import GoogleAPICallError
from google.auth.credentials import AnonymousCredentials, Credentials
from google.auth.exceptions import GoogleAuthError
from google.auth.transport.requests import AuthorizedSession, Request
from google.cloud import bigquery
from google.oauth2 import service_account
from pydantic import Field, field_validator

from connectors.destinations.base import (
    Context,
    Destination,
    DestinationConfig,
    DestinationUserError,
    Step,
    WriteRequest,
)
from connectors.destinations.network.endpoints import parse_endpoint
from connectors.destinations.network.hosts import HostRefused
from connectors.destinations.network.proxy import Route, route_for
from connectors.destinations.tables.rows import plain
from connectors.destinations.warehouses import bigquery_sql as sql
from connectors.destinations.warehouses.bigquery_sql import Column
from connectors.destinations.warehouses.staging import RULES, STAGE_PREFIX, StagedWriter

logger = logging.getLogger(__name__)

GOOGLE_API = "https://bigquery.googleapis.com"
GOOGLE_TOKEN_URIS = ("https://oauth2.googleapis.com/token", "https://accounts.google.com/o/oauth2/token")
"""Google's token endpoints: the current one, and the one older key files name."""
SCOPES = ("https://www.googleapis.com/auth/bigquery",)
STAGE_DAYS = 1
"""A stage expires after this (BigQuery drops it), should every attempt that could drop it be lost."""
SPOOL_BYTES = 32 * 2**20
"""The most Parquet one load job takes: batches are spooled to a file on disk and loaded this much at a time."""
_PROJECT = r"^([a-z0-9][a-z0-9.-]{0,61}[a-z0-9]:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$"
_EMAIL = r"^[^@\s]{1,64}@[A-Za-z0-9.-]{1,253}$"
_ARROW = {"STRING": pa.string(), "INT64": pa.int64(), "FLOAT64": pa.float64(), "BOOL": pa.bool_(),
          "TIMESTAMP": pa.timestamp("us", tz="UTC")}  # fmt: skip

T = TypeVar("T")


class BigQueryConfig(DestinationConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"private_key", "private_key_id"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"project_id", "token_uri"})
    """The key is the project's, and it signs a token request sent to `token_uri`."""

    project_id: str = Field(pattern=_PROJECT, max_length=128, description="The Google Cloud project.")
    dataset_id: str = Field(pattern=r"^[A-Za-z0-9_]{1,1024}$", description="The dataset (it must exist).")
    table_id: str = Field(
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,1023}$", description="The table: created if missing (events are "
        "partitioned by day on `timestamp`).",
    )  # fmt: skip
    use_json_type: bool = Field(False, description="JSON columns as `JSON` (else `STRING`) in a table created here.")
    private_key: str = Field(
        min_length=1, max_length=16_384, description="The service account's private key (PEM), write-only."
    )
    private_key_id: str = Field(min_length=1, max_length=200, description="The key's id, write-only.")
    client_email: str = Field(pattern=_EMAIL, max_length=320, description="The service account's e-mail.")
    token_uri: str = Field(
        GOOGLE_TOKEN_URIS[0], max_length=2048, description="Where the signed token request goes: Google's own "
        "endpoint, or the one `BATCH_EXPORTS_BIGQUERY_TOKEN_URI` names.",
    )  # fmt: skip

    @field_validator("private_key")
    @classmethod
    def _pem_key(cls, value: str) -> str:
        try:
            load_pem_private_key(value.replace("\\n", "\n").encode(), password=None)
        except (ValueError, TypeError):
            raise ValueError(
                "must be the service account's private key in PEM (-----BEGIN PRIVATE KEY-----), as its JSON key "
                "file holds it"
            ) from None
        return value

    @field_validator("token_uri")
    @classmethod
    def _https(cls, value: str) -> str:
        if parse_endpoint(value).scheme != "https":
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("table_id")
    @classmethod
    def _not_ours(cls, value: str) -> str:
        if value.startswith(STAGE_PREFIX) or value == sql.MARKS_TABLE:
            raise ValueError(f"names a table of this service's own ({STAGE_PREFIX}..., {sql.MARKS_TABLE})")
        return value

    @property
    def dataset(self) -> str:
        return f"{self.project_id}.{self.dataset_id}"

    @property
    def table(self) -> str:
        return f"{self.dataset}.{self.table_id}"


URL_SETTING, TOKEN_URI_SETTING = "bigquery_url", "bigquery_token_uri"
"""`BATCH_EXPORTS_BIGQUERY_URL` (empty: Google's) and `BATCH_EXPORTS_BIGQUERY_TOKEN_URI`, as destinations are
given them (`Context.setting`)."""


def _session(route: Route, session: requests.Session | None = None) -> requests.Session:
    """A session that connects only through the egress route: no proxy, certificate or netrc of the environment,
    no redirect followed."""
    session = session or requests.Session()
    session.trust_env = False
    session.proxies = {"http": route.url, "https": route.url}
    session.max_redirects = 0
    return session


def client(config: BigQueryConfig, context: Context, route: Route) -> bigquery.Client:
    """The official client, calling the setting's endpoint (no credentials) or Google's (the service account's)."""
    if config.token_uri not in (*GOOGLE_TOKEN_URIS, context.setting(TOKEN_URI_SETTING)):
        raise HostRefused(
            f"token_uri {config.token_uri[:200]} is not Google's token endpoint ({GOOGLE_TOKEN_URIS[0]}); "
            "the service account's key signs requests only for it (or BATCH_EXPORTS_BIGQUERY_TOKEN_URI)",
            "token_uri",
        )
    options = ClientOptions(api_endpoint=parse_endpoint(context.setting(URL_SETTING) or GOOGLE_API, path=False).url)
    credentials: Credentials = AnonymousCredentials()  # an emulator takes no credentials, and is sent none
    if not context.setting(URL_SETTING):
        credentials = service_account.Credentials.from_service_account_info(
            {"type": "service_account", "project_id": config.project_id, "private_key_id": config.private_key_id,
             "private_key": config.private_key.replace("\\n", "\n"), "client_email": config.client_email,
             "token_uri": config.token_uri},
            scopes=SCOPES,
        )  # fmt: skip
    http = AuthorizedSession(credentials, auth_request=Request(_session(route)))
    return bigquery.Client(project=config.project_id, credentials=credentials, _http=_session(route, http),
                           client_options=options)  # fmt: skip


class Connection:
    """One attempt's (or check's) client and route, and the one way its blocking calls are made."""

    def __init__(self, config: BigQueryConfig, context: Context) -> None:
        self.config = config
        self.context = context
        self.route = route_for(context)
        self.client = client(config, context, self.route)
        self.seconds = context.limits.call_seconds

    async def call(self, doing: str, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`function` in a thread; what only the user can fix (the provider's words) as DestinationUserError."""
        try:
            return await asyncio.to_thread(function, *args, **kwargs)
        except (GoogleAPICallError, GoogleAuthError, requests.RequestException) as error:
            if why := self.route.refusal():
                raise DestinationUserError(f"cannot {doing}: {why}") from None
            if isinstance(error, GoogleAPICallError) and (error.code or 500) >= 500:
                raise  # the service's trouble: worth another attempt
            if isinstance(error, requests.RequestException):
                raise
            said = error.message if isinstance(error, GoogleAPICallError) else str(error)
            message = f"cannot {doing}: {said}"
            if self.context.egress is not None:
                message = self.context.egress.redact(message)
            raise DestinationUserError(self.config.redact(message)) from None

    async def query(self, doing: str, statement: str, **parameters: Any) -> list[Any]:
        config = bigquery.QueryJobConfig(query_parameters=[_parameter(k, v) for k, v in parameters.items()])

        def run() -> list[Any]:
            job = self.client.query(statement, job_config=config, timeout=self.seconds)
            return list(job.result(timeout=self.seconds))

        return await self.call(doing, run)

    def close(self) -> None:
        self.client.close()


def _parameter(name: str, value: Any) -> bigquery.ScalarQueryParameter:
    kind = "INT64" if isinstance(value, int) else "STRING"
    return bigquery.ScalarQueryParameter(name, kind, value)


def stage_schema(staged: tuple[Column, ...]) -> list[bigquery.SchemaField]:
    return [bigquery.SchemaField(c.name, c.stage_type, mode=c.mode) for c in staged]


def arrow_schema(staged: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([(c.name, pa.list_(pa.string()) if c.repeated else _ARROW[c.stage_type]) for c in staged])


def staged_rows(batch: pa.RecordBatch, schema: pa.Schema, ingested: datetime) -> pa.Table:
    """The batch as the stage holds it: the stage's columns and types (JSON as text), a missing one null."""
    by_name = dict(zip(batch.schema.names, batch.columns, strict=True))
    arrays = []
    for field in schema:
        if field.name == sql.INGESTED:
            arrays.append(pa.repeat(pa.scalar(ingested, field.type), batch.num_rows))
        elif field.name in by_name:
            arrays.append(pc.cast(plain(by_name[field.name]), field.type))
        else:
            arrays.append(pa.nulls(batch.num_rows, field.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def reconcile(
    table: str, wanted: tuple[Column, ...], held: list[bigquery.SchemaField]
) -> tuple[list[Column], dict[str, Column]]:
    """The columns the target lacks, and the target's column for each wanted one (a JSON column may be held as
    `STRING` or `JSON`: the table's way is kept); a column of another type is the user's error, named."""
    by_name = {field.name: field for field in held}
    missing, into, problems = [], {}, []
    for column in wanted:
        field = by_name.get(column.name)
        if field is None:
            missing.append(column)
            into[column.name] = column
            continue
        held_type, repeated = sql.normal_type(field.field_type), field.mode == "REPEATED"
        as_text = {held_type, column.type} <= {"STRING", "JSON"}
        if repeated != column.repeated or not (held_type == column.type or as_text):
            have = f"{'ARRAY<' + held_type + '>' if repeated else held_type}"
            problems.append(f"column {column.name} is {have} in the table, the export writes {column.sql_type}")
        into[column.name] = Column(column.name, held_type, repeated)
    if problems:
        raise DestinationUserError(
            f"the table {table} does not take this export's columns: {'; '.join(problems)}. Export to a new "
            "table, or change the column's type"
        )
    return missing, into


class BigQueryWriter(StagedWriter):
    """Stage then apply (`staging`): a stage table per attempt, loaded by load jobs from Parquet spooled on disk
    (one every `SPOOL_BYTES`), applied by one transaction that merges it and records the run's mark."""

    def __init__(self, config: BigQueryConfig, request: WriteRequest) -> None:
        if request.model not in RULES:
            raise DestinationUserError(f"the BigQuery destination does not export the {request.model} model")
        super().__init__(request)
        self.config = config
        self.request = request
        self.staged = sql.columns(request.model, config.use_json_type)
        self.schema = arrow_schema(self.staged)
        self.marks = f"{config.dataset}.{sql.MARKS_TABLE}"
        self.ingested = datetime.now(UTC)
        self.records = 0
        self._counted = False
        """Every batch is staged: `records` is the attempt's count."""
        self.into: dict[str, Column] = {}
        self._connection: Connection | None = None
        self._spool: Any = None
        self._parquet: pq.ParquetWriter | None = None

    @property
    def bq(self) -> Connection:
        assert self._connection is not None, "open() comes first"
        return self._connection

    def _in_dataset(self, name: str) -> str:
        return f"{self.config.dataset}.{name}"

    async def open(self) -> None:
        """The target as the export needs it (created, or a column it lacks added), and the marks table."""
        self._connection = Connection(self.config, self.request.context)
        config, bq = self.config, self.bq
        await bq.call(f"find the dataset {config.dataset}", bq.client.get_dataset, config.dataset, timeout=bq.seconds)
        fields = [bigquery.SchemaField(c.name, c.type, mode=c.mode) for c in self.staged]
        table = bigquery.Table(config.table, schema=fields)
        if self.request.model == "events":
            table.time_partitioning = bigquery.TimePartitioning(bigquery.TimePartitioningType.DAY, sql.PARTITION_COLUMN)
        doing = f"create the table {config.table}"
        await bq.call(doing, bq.client.create_table, table, exists_ok=True, timeout=bq.seconds)
        held = await bq.call(doing, bq.client.get_table, config.table, timeout=bq.seconds)
        missing, self.into = reconcile(config.table, self.staged, held.schema)
        for column in missing:
            await self._add_column(column)
        await bq.query(f"create the table {self.marks}", sql.create_marks(self.marks))

    async def _add_column(self, column: Column) -> None:
        bq, table = self.bq, self.config.table
        await bq.query(f"add the column {column.name} to {table}", sql.add_column(table, column))
        held = await bq.call(f"read {table}", bq.client.get_table, table, timeout=bq.seconds)
        if column.name not in {field.name for field in held.schema}:  # an emulator that altered only its storage
            held.schema = [*held.schema, bigquery.SchemaField(column.name, column.type, mode=column.mode)]
            await bq.call(f"add the column {column.name} to {table}", bq.client.update_table, held, ["schema"])

    async def stale_stages(self, prefix: str) -> list[str]:
        bq, dataset = self.bq, self.config.dataset

        def listed() -> list[str]:
            return [t.table_id for t in bq.client.list_tables(dataset, timeout=bq.seconds)]

        return [name for name in await bq.call(f"list the tables of {dataset}", listed) if name.startswith(prefix)]

    async def applied(self, mark: str) -> bool:
        """Whether an apply of the run with as many records landed: the count is known only once every batch is
        staged (`commit`), so before that nothing has landed as far as this attempt can tell. An attempt that
        got further than an earlier one's apply (a resumed one) applies, and the merge keeps each record once."""
        if not self._counted:
            return False
        found = await self.bq.query(
            f"read {self.marks}", sql.applied(self.marks),
            table_id=self.config.table_id, run_id=mark, records=self.records,
        )  # fmt: skip
        return bool(found and found[0][0])

    async def commit(self, final: bool = True) -> None:
        self._counted = True
        await super().commit(final)

    async def create_stage(self, stage: str) -> None:
        table = bigquery.Table(self._in_dataset(stage), schema=stage_schema(self.staged))
        table.expires = datetime.now(UTC) + timedelta(days=STAGE_DAYS)
        await self.bq.call(f"create the stage {stage}", self.bq.client.create_table, table, timeout=self.bq.seconds)

    async def load(self, stage: str, batch: pa.RecordBatch) -> None:
        if not batch.num_rows:
            return
        rows = await asyncio.to_thread(staged_rows, batch, self.schema, self.ingested)
        await asyncio.to_thread(self._spooled, rows)
        self.records += batch.num_rows
        if self._spool.tell() >= SPOOL_BYTES:
            await self._load(stage)

    def _spooled(self, rows: pa.Table) -> None:
        if self._parquet is None:
            self._spool = tempfile.TemporaryFile()  # noqa: SIM115 (closed by `_load` or `close`)
            self._parquet = pq.ParquetWriter(self._spool, self.schema, compression="zstd")
        self._parquet.write_table(rows)

    async def _load(self, stage: str) -> None:
        """A load job of what is spooled into the stage."""
        if self._parquet is None:
            return
        parquet, spool, self._parquet, self._spool = self._parquet, self._spool, None, None
        job_config = bigquery.LoadJobConfig(
            source_format=bigquery.SourceFormat.PARQUET,
            write_disposition=bigquery.WriteDisposition.WRITE_APPEND,
            parquet_options=_list_inference(),
        )
        bq, table = self.bq, self._in_dataset(stage)

        def load() -> None:
            parquet.close()
            spool.seek(0)
            job = bq.client.load_table_from_file(spool, table, job_config=job_config, timeout=bq.seconds)
            job.result(timeout=bq.seconds)

        try:
            await bq.call(f"load the stage {stage}", load)
        finally:
            spool.close()

    async def apply(self, stage: str, mark: str) -> None:
        await self._load(stage)
        merge = sql.merge(self.config.table, self._in_dataset(stage), self.rule, self.staged, self.into)
        script = sql.apply_script(merge, self.marks, self.config.table_id, mark, self.records)
        await self.bq.query(f"merge into {self.config.table}", script)

    async def drop_stage(self, stage: str) -> None:
        bq = self.bq
        await bq.call(f"drop {stage}", bq.client.delete_table, self._in_dataset(stage), not_found_ok=True,
                      timeout=bq.seconds)  # fmt: skip

    async def close(self) -> None:
        parquet, spool, self._parquet, self._spool = self._parquet, self._spool, None, None
        if parquet is not None:
            parquet.close()  # what was spooled and not loaded is let go
        if spool is not None:
            spool.close()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()


def _list_inference() -> bigquery.ParquetOptions:
    options = bigquery.ParquetOptions()
    options.enable_list_inference = True  # a Parquet list is a REPEATED column, not a record of `list.element`
    return options


async def _dataset_found(config: BigQueryConfig, context: Context) -> None:
    bq = Connection(config, context)
    try:
        await bq.call(f"find the dataset {config.dataset}", bq.client.get_dataset, config.dataset, timeout=bq.seconds)
    finally:
        bq.close()


async def _table_creatable(config: BigQueryConfig, context: Context) -> None:
    """A table can be created in the dataset (then it is dropped): what the export does with its target and stages."""
    bq = Connection(config, context)
    try:
        probe = f"{config.dataset}.bx_check_{secrets.token_hex(4)}"
        table = bigquery.Table(probe, schema=[bigquery.SchemaField("checked", "STRING")])
        await bq.call(f"create a table in {config.dataset}", bq.client.create_table, table, timeout=bq.seconds)
        await bq.call(f"drop {probe}", bq.client.delete_table, probe, not_found_ok=True, timeout=bq.seconds)
    finally:
        bq.close()


DESTINATION = Destination(
    type="BigQuery",
    config=BigQueryConfig,
    open_writer=BigQueryWriter,
    steps=(
        Step("Dataset found", "Reach BigQuery and find the dataset.", _dataset_found),
        Step("Tables can be created", "Create (then drop) a table in the dataset.", _table_creatable),
    ),
    models=tuple(RULES),
    custom_columns=False,  # the table has PostHog's columns
    event_layout="postgres",  # PostHog's BigQuery events columns are its PostgreSQL ones (and bq_ingested_timestamp)
)
