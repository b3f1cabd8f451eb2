"""Every setting of the service, read from environment variables (documented in the README).

The Temporal client itself follows Temporal's conventions (`TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`,
`TEMPORAL_PROFILE`, ...) through `temporalio.envconfig`; see `batch_exports.temporal.client`.
"""

from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
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
    task_queue: str = Field("batch-exports", description="Temporal task queue of the workers.")
    encryption_key: SecretStr | None = Field(
        None,
        description="Fernet key(s), comma-separated, newest first, encrypting destination configs at rest.",
    )

    api_host: str = Field("127.0.0.1", description="Address the HTTP gateway binds.")
    api_port: int = Field(8000, description="Port of the HTTP gateway.")
    max_body_mb: int = Field(20, description="Largest request body the gateway accepts, in MiB.")
    temporal_ui_url: str | None = Field(
        None, pattern=r"^https?://", description="The Temporal UI the gateway's front page links (`make dev`'s own)."
    )

    settle_delay_seconds: float = Field(
        30, ge=0, description="How long a run waits after its interval ends before it reads the source."
    )
    jitter_enabled: bool = Field(True, description="Spread scheduled runs by a jitter that grows with interval.")
    run_max_attempts: int = Field(
        3, ge=1, description="Executions of a run before it is `Failed`; the ones before end `FailedRetryable`."
    )
    run_retry_initial_seconds: float = Field(60, gt=0, description="Wait before a run's first re-execution.")
    export_max_attempts: int = Field(10, ge=1, description="Attempts of the export activity within one execution.")
    export_retry_initial_seconds: float = Field(10, gt=0, description="Wait before the export's first retry.")
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
        0, ge=0, description="Records one execution exports before it continues as new (0: no limit)."
    )
    auto_pause_after_failures: int = Field(
        10, ge=0, description="Pause an export whose this many latest runs all `Failed` (0: never)."
    )
    backfill_concurrency: int = Field(10, ge=1, description="Runs a backfill keeps going at once.")
    max_running_backfills_per_project: int = Field(
        10, ge=1, description="Backfills one project may have running; more are refused with 429."
    )
    max_exports_per_project: int = Field(
        100, ge=1, description="Batch exports one project may have (deleted ones do not count); more is a 400."
    )
    max_concurrent_exports_per_project: int = Field(
        10,
        ge=1,
        description="Export attempts of one project a worker runs at once; one more gives its slot back and is "
        "retried a few seconds later, without using up an attempt.",
    )
    worker_max_concurrent_activities: int = Field(
        100, ge=1, description="Activities (export attempts, bookkeeping) one worker runs at once."
    )
    max_concurrent_checks: int = Field(
        4, ge=1, description="Destination checks one gateway runs at once, on threads of their own; more are a 429."
    )
    check_timeout_seconds: float = Field(
        30, gt=0, description="How long a destination check may take before its answer says it did not finish."
    )
    reconcile_every_seconds: int = Field(60, ge=5, description="How often reconciliation runs.")
    cancel_wait_seconds: float = Field(
        10, ge=0, le=60, description="How long a cancel request waits for the run (or backfill) to stop before a 202."
    )
    allow_private_destinations: bool = Field(
        False, description="Let destinations reach loopback and private addresses (`make dev` and the tests do)."
    )
    destination_call_timeout_seconds: float = Field(
        120, gt=0, le=3600, description="The longest one call to a destination may take, its answer read."
    )
    destination_max_answer_mb: float = Field(
        64, gt=0, le=4096, description="The most of one destination answer a client reads into memory, in MiB."
    )
    max_filters: int = Field(100, ge=1, description="Filters one export may have.")
    max_filter_length: int = Field(
        2000, ge=1, description="Characters of a filter's key, and of its value (a list's values together)."
    )
    max_expression_depth: int = Field(
        64, ge=1, le=500, description="How deeply a hogql_query's or hogql filter's expressions may nest."
    )
    max_backfill_intervals: int = Field(50_000, ge=1, description="Intervals one backfill may run.")
    source_statement_timeout_seconds: float = Field(
        3600, gt=0, description="How long one query of a run on the event source may take (whole stream)."
    )
    file_destination_root: Path | None = Field(
        None, description="Directory `File` destinations write under; defaults to `{data_dir}/exports`."
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
    metrics_host: str = Field("127.0.0.1", description="Address the Prometheus metrics endpoints bind.")
    worker_metrics_port: int = Field(
        9464, ge=0, le=65535, description="Port of the worker's Prometheus endpoint (`make dev`'s too); 0: none."
    )
    api_metrics_port: int = Field(
        9465, ge=0, le=65535, description="Port of the gateway's Prometheus endpoint; 0: none."
    )
    metrics_refresh_seconds: float = Field(
        15, gt=0, description="How often a worker recomputes the gauges read from the database (lag, backfills left)."
    )
    log_format: Literal["text", "json"] = Field(
        "text", description="`json`: one JSON object per log line, with the export, run and workflow ids it concerns."
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field("INFO", description="Lowest level logged.")

    # The embedded stack of `make dev`.
    data_dir: Path = Field(Path(".data"), description="Where `make dev` keeps PostgreSQL and Temporal data.")
    temporal_port: int = Field(7233, description="gRPC port of the embedded Temporal dev server.")
    temporal_ui_port: int = Field(8233, description="Port of the embedded Temporal UI.")
    postgres_port: int = Field(5433, description="Port of the embedded PostgreSQL.")
    azurite_port: int = Field(10000, description="Port of the Azurite `make azurite` starts beside `make dev`.")
    bigquery_port: int = Field(9050, description="Port of the bqemulator `make bigquery` starts beside `make dev`.")
    dev_project_token: str = Field("phc_dev_local", description="Token of the project `make dev` creates.")
    dev_api_key: SecretStr = Field(SecretStr("phx_dev_local"), description="Personal API key `make dev` creates.")

    @property
    def source_dsn(self) -> str:
        return self.source_database_url or self.database_url

    @property
    def exports_root(self) -> Path:
        return (self.file_destination_root or self.data_dir / "exports").resolve()


@cache
def get_settings() -> Settings:
    return Settings()
