"""Every setting of the service, read from environment variables.

Each Field's `description=` is its documentation: docs/configuration.md is written from this module
(`python -m entrypoints.config_doc > docs/configuration.md`).

The Temporal client itself follows Temporal's conventions (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_PROFILE`, ...) through `temporalio.envconfig`; see `batch_exports.temporal.client`.
"""

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BATCH_EXPORTS_", extra="ignore")

    database_url: str = Field(
        "postgresql://postgres@127.0.0.1:5432/batch_exports",
        description="PostgreSQL holding the service's metadata (and, by default, the event source).",
    )
    source_database_url: str | None = Field(
        None, description="PostgreSQL holding events and persons; defaults to `database_url`."
    )
    source: Literal["postgres", "clickhouse"] = Field(
        "postgres",
        description="Where runs read events and persons: this service's PostgreSQL (`postgres`, filled by its capture "
        "endpoints) or a self-hosted PostHog's ClickHouse (`clickhouse`; a project id is the PostHog team id).",
    )
    clickhouse_url: str | None = Field(
        None, pattern=r"^https?://[^/?#]+/?$",
        description="ClickHouse's HTTP interface (`http://host:8123`, `https://host:8443`) when `source` is "
        "`clickhouse`.",
    )  # fmt: skip
    clickhouse_user: str = Field("default", description="The ClickHouse user runs read as (read-only is enough).")
    clickhouse_password: SecretStr = Field(SecretStr(""), description="That user's password.")
    clickhouse_database: str = Field(
        "default", pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="The database holding PostHog's tables."
    )
    source_max_memory_mb: int = Field(
        0, ge=0, description="`max_memory_usage` of each ClickHouse query, in MiB; 0: the server's own."
    )
    task_queue: str = Field("batch-exports", description="Temporal task queue of the workers.")
    encryption_key: SecretStr | None = Field(
        None,
        description="Fernet key(s), comma-separated, newest first, encrypting destination configs at rest. Required by "
        "the worker and the gateway; `make dev` makes one in `.data/encryption.key`.",
    )

    api_host: str = Field("127.0.0.1", description="Address the HTTP gateway binds.")
    api_port: int = Field(8000, description="Port of the HTTP gateway (`make dev`, `make api`).")
    max_body_mb: int = Field(20, description="Largest request body the gateway accepts, in MiB.")
    temporal_ui_url: str | None = Field(
        None, pattern=r"^https?://", description="The Temporal UI the gateway's front page links (`make dev`'s own)."
    )

    settle_delay_seconds: float = Field(
        30, ge=0, description="How long a run waits after its interval ends before it reads the source."
    )
    jitter_enabled: bool = Field(
        True,
        description="Spread scheduled runs by a jitter (hour 15 min, day 20, week 30, every N minutes N/5).",
    )
    run_max_attempts: int = Field(
        3, ge=1, description="Executions of a run before it is `Failed`; the ones before end `FailedRetryable`."
    )
    run_retry_initial_seconds: float = Field(
        60, gt=0, description="Wait before a run's first re-execution (doubling after)."
    )
    export_max_attempts: int = Field(10, ge=1, description="Attempts of the export activity within one execution.")
    export_retry_initial_seconds: float = Field(
        10, gt=0, description="Wait before the export's first retry (doubling, at most 2 min)."
    )
    export_heartbeat_timeout_seconds: float = Field(
        20, ge=2, description="How long an export attempt may go without a heartbeat before Temporal retries it."
    )
    shutdown_grace_seconds: float = Field(
        20,
        ge=0,
        description="On SIGTERM, how long the worker lets attempts reach a checkpoint (and the gateway finishes "
        "requests) before it stops them: below Kubernetes' default 30 s.",
    )
    max_records_per_execution: int = Field(
        0, ge=0, description="Records one execution exports before it continues as new (`ContinuedAsNew`); 0: no limit."
    )
    auto_pause_after_failures: int = Field(
        10, ge=0, description="Pause an export whose this many latest runs all `Failed` (0: never)."
    )
    backfill_concurrency: int = Field(10, ge=1, description="Runs a backfill keeps going at once.")
    max_running_backfills_per_project: int = Field(
        10, ge=1, description="Backfills one project may have running; more are refused with 429."
    )
    max_exports_per_project: int = Field(
        100,
        ge=1,
        description="Batch exports one project may have (deleted ones do not count); one more is a 400 naming this.",
    )
    max_concurrent_exports_per_project: int = Field(
        10,
        ge=1,
        description="Export attempts of one project a worker runs at once. One more waits up to 5 s for one of them "
        "to end (as many may wait, while the worker's exports hold under half its activity slots); else it gives its "
        "activity slot back and is retried 5 s later (doubling to 30 s), without using up one of "
        "`BATCH_EXPORTS_EXPORT_MAX_ATTEMPTS`.",
    )
    worker_max_concurrent_activities: int = Field(
        100,
        ge=1,
        description="Activities (export attempts, bookkeeping) one worker runs at once: Temporal's "
        "`max_concurrent_activities`. Keep it above the per-project cap times the projects that may saturate it.",
    )
    workflow_sandbox: bool = Field(
        False,
        description="Run the worker's workflows in Temporal's sandbox, which re-imports a workflow's module and "
        "proxies its globals for every execution (a quarter of a worker's CPU in a backfill, `bench/README.md`). "
        "Off, the workflows run as plain Python: their determinism rests on the tests, which run them in the "
        "sandbox and replay recorded histories under it (`docs/operating.md`).",
    )
    max_concurrent_checks: int = Field(
        4,
        ge=1,
        description="Destination checks (`run_test_step/`) one gateway runs at once, on threads of their own; "
        "more are a 429.",
    )
    check_timeout_seconds: float = Field(
        30,
        gt=0,
        description="How long a destination check may take; past it the check answers `Failed`, saying it did not "
        "finish.",
    )
    reconcile_every_seconds: int = Field(
        60,
        ge=5,
        description="How often the reconciliation workflow (one long-lived workflow the worker starts) makes a pass.",
    )
    cancel_wait_seconds: float = Field(
        10,
        ge=0,
        le=60,
        description="How long `runs/{id}/cancel/`, `backfills/{id}/cancel/` and `DELETE` wait for runs to stop "
        "before a 202.",
    )
    allow_private_destinations: bool = Field(
        False, description="Let destinations reach loopback and private addresses (`make dev` and the tests do)."
    )
    destination_call_timeout_seconds: float = Field(
        120,
        gt=0,
        le=3600,
        description="The longest one call to a destination may take, its answer read (an Azure call with its "
        "retries; a plain request through the egress proxy; a tunnel with nothing moving).",
    )
    destination_max_answer_mb: float = Field(
        64,
        gt=0,
        le=4096,
        description="The most of one destination answer a client reads into memory, in MiB (a ranged read through the "
        "proxy: the range asked for); a longer answer fails the call.",
    )
    max_filters: int = Field(100, ge=1, description="Filters one export may have; more are a 400 naming `filters`.")
    max_filter_length: int = Field(
        2000,
        ge=1,
        description="Characters of a filter's key, and of its value (a list's values together); longer is a 400.",
    )
    max_expression_depth: int = Field(
        64,
        ge=1,
        le=500,
        description="How deeply a `hogql_query`'s or `hogql` filter's expressions may nest; deeper is a 400.",
    )
    max_backfill_intervals: int = Field(
        50_000,
        ge=1,
        description="Intervals one backfill (or `unpause/` with backfill) may run; more is a 400 naming `start_at`.",
    )
    source_statement_timeout_seconds: float = Field(
        3600,
        gt=0,
        description="How long one query of a run on the event source may take, streaming included; past it the run "
        "fails, saying so (not retried).",
    )
    file_destination_root: Path | None = Field(
        None,
        description="Directory `File` destinations write under, each project in its own `{root}/{project id}/`; "
        "defaults to `{data_dir}/exports`.",
    )
    smtp_url: str | None = Field(
        None, description="SMTP server e-mail notices go through: `smtp://[user:password@]host[:port]` (STARTTLS "
        "when offered) or `smtps://`; none: no e-mail targets.",
    )  # fmt: skip
    smtp_from: str = Field("batch-exports@localhost", description="The From address of e-mail notices.")
    iceberg_catalog_url: str | None = Field(
        None, description="PostgreSQL of the `Iceberg` destinations' SQL catalog (schema `iceberg_catalog`); "
        "defaults to `database_url`.",
    )  # fmt: skip
    snowflake_url: str | None = Field(
        None, description="Where `Snowflake` destinations connect, as `scheme://host:port` (fakesnow's "
        "`http://127.0.0.1:PORT` in the tests); none: each account's `https://{account}.snowflakecomputing.com`.",
    )  # fmt: skip

    bigquery_url: str | None = Field(
        None, description="Where `BigQuery` destinations send their API calls (an emulator's `http://127.0.0.1:PORT`, "
        "then no credentials are sent); none: Google's own endpoint, with the export's service account.",
    )  # fmt: skip
    bigquery_token_uri: str = Field(
        "https://oauth2.googleapis.com/token", description="The one token endpoint a `BigQuery` export's "
        "`token_uri` may name besides Google's own (`https://oauth2.googleapis.com/token`, "
        "`https://accounts.google.com/o/oauth2/token`): the service account's key signs the request sent there.",
    )  # fmt: skip

    # What the processes tell operators: metrics, logs (traces follow OpenTelemetry's own OTEL_* variables).
    metrics_host: str = Field(
        "127.0.0.1", description="Address the Prometheus metrics endpoints bind (`0.0.0.0` in a container)."
    )
    worker_metrics_port: int = Field(
        9464,
        ge=0,
        le=65535,
        description="Port of the worker's Prometheus endpoint (`make dev`'s too); 0: none. A worker started on a busy "
        "port runs without it, logged at ERROR naming this setting (`make dev` refuses instead).",
    )
    api_metrics_port: int = Field(
        9465,
        ge=0,
        le=65535,
        description="Port of the gateway's Prometheus endpoint (`make api`; `make dev`'s gateway shares the "
        "worker's); 0: none.",
    )
    metrics_refresh_seconds: float = Field(
        15, gt=0, description="How often a worker recomputes the gauges read from the database (lag, backfills left)."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line, with the export, run and workflow ids it concerns."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Lowest level logged by the worker and the gateway."
    )
    event_loop: Literal["uvloop", "asyncio"] = Field(
        "uvloop",
        description="The event loop the worker, the gateway and `make dev` run on: `uvloop` (a loop in C on libuv; "
        "the gateway spends less CPU per request on it, `bench/README.md`) or `asyncio`, the standard library's.",
    )
    api_key_cache: bool = Field(
        True,
        description="Whether the gateway keeps the API keys it found valid until PostgreSQL notifies a change "
        "(`docs/api.md`). Its listening connection needs a session of its own: behind a pooler in transaction mode "
        "(PgBouncer's `pool_mode = transaction`) notifications do not arrive, so turn this off there.",
    )

    # The embedded stack of `make dev`.
    data_dir: Path = Field(Path(".data"), description="Where `make dev` keeps PostgreSQL and Temporal data.")
    temporal_port: int = Field(
        7233, description="gRPC port of the embedded Temporal dev server (unless `TEMPORAL_ADDRESS` is set)."
    )
    temporal_ui_port: int = Field(
        8233, description="Port of the embedded Temporal UI (unless `TEMPORAL_ADDRESS` is set)."
    )
    postgres_port: int = Field(
        5433, description="Port of the embedded PostgreSQL (unless `BATCH_EXPORTS_DATABASE_URL` is set)."
    )
    azurite_port: int = Field(10000, description="Port of the Azurite `make azurite` starts beside `make dev`.")
    fakesnow_port: int = Field(8085, description="Port of the fakesnow `make snowflake` starts beside `make dev`.")
    bigquery_port: int = Field(9050, description="Port of the bqemulator `make bigquery` starts beside `make dev`.")
    dev_project_token: str = Field("phc_dev_local", description="Token of the project `make dev` creates.")
    dev_api_key: SecretStr = Field(SecretStr("phx_dev_local"), description="Personal API key `make dev` creates.")

    @model_validator(mode="after")
    def _clickhouse_named(self) -> "Settings":
        if self.source == "clickhouse" and not self.clickhouse_url:
            raise ValueError("BATCH_EXPORTS_SOURCE is clickhouse: set BATCH_EXPORTS_CLICKHOUSE_URL")
        return self

    @property
    def source_dsn(self) -> str:
        return self.source_database_url or self.database_url

    @property
    def exports_root(self) -> Path:
        return (self.file_destination_root or self.data_dir / "exports").resolve()


@cache
def get_settings() -> Settings:
    return Settings()
