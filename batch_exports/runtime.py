"""The composition root: one small holder of what every process is built from.

The worker, the gateway and `make dev` each open one `Runtime` (the metadata pool, the event source, the
Temporal client, the settings and the config cipher) and hand it to what they build; nothing else opens
a pool or a client of its own.
"""

import asyncio
import concurrent.futures
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlparse

import asyncpg
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import Tracer
from temporalio.client import Client

from batch_exports import event_loop
from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings
from batch_exports.store import db, exports
from batch_exports.store.run_book import PostgresRunBook
from batch_exports.telemetry import tracing
from batch_exports.telemetry.metrics import ServiceMetrics, temporal_runtime
from batch_exports.temporal import client as temporal_client
from batch_exports.temporal.run_port import TemporalRuns
from connectors.destinations import Context
from connectors.destinations.base import ClientLimits, ProtectedDatabase
from connectors.destinations.network import proxy
from connectors.destinations.network.proxy import EgressProxy
from connectors.sources.clickhouse.http import ClickHouse, ClickHouseServer
from connectors.sources.reading import SourceDatabase

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    pool: asyncpg.Pool
    """The service's metadata database."""
    source: SourceDatabase | ClickHouse
    """The event store runs read: PostgreSQL (the metadata's database by default) or PostHog's ClickHouse."""
    client: Client
    cipher: ConfigCipher
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    """Where the service's metrics are recorded (nowhere unless the process serves them)."""
    tracer: Tracer | None = None
    """Set when tracing is on: the gateway's request spans."""
    egress: EgressProxy | None = None
    """The process's forward proxy for destination clients in native code (`connectors.destinations.network.proxy`)."""

    @property
    def run_book(self) -> PostgresRunBook:
        """The run domain's books, in the metadata database."""
        return PostgresRunBook(self.pool)

    @property
    def run_temporal(self) -> TemporalRuns:
        """The run domain's Temporal."""
        return TemporalRuns(
            self.client, self.settings, lambda export_id: exports.get(self.pool, export_id, self.cipher)
        )

    @property
    def destinations(self) -> Context:
        """What destinations are told about where they run (`for_project` narrows it to one project's)."""
        settings = self.settings
        return Context(
            files_root=settings.exports_root,
            allow_private=settings.allow_private_destinations,
            protected_databases=own_databases(settings),
            limits=ClientLimits(
                call_seconds=settings.destination_call_timeout_seconds,
                check_seconds=settings.check_timeout_seconds,
                answer_bytes=int(settings.destination_max_answer_mb * 2**20),
            ),
            egress=self.egress,
            destination_settings={
                "iceberg_catalog_url": settings.iceberg_catalog_url or settings.database_url,
                "snowflake_url": settings.snowflake_url or "",
                "bigquery_url": settings.bigquery_url or "",
                "bigquery_token_uri": settings.bigquery_token_uri,
            },
        )


def own_databases(settings: Settings) -> tuple[ProtectedDatabase, ...]:
    """The service's own databases (metadata, event source), which no destination may point at."""
    found = []
    for dsn in dict.fromkeys((settings.database_url, settings.source_dsn)):
        url = urlparse(dsn)
        with contextlib.suppress(ValueError):
            found.append(ProtectedDatabase(url.hostname or "", url.port or 5432, url.path.lstrip("/")))
    return tuple(found)


def clickhouse_of(settings: Settings) -> ClickHouse:
    assert settings.clickhouse_url is not None
    return ClickHouse(
        ClickHouseServer(
            settings.clickhouse_url,
            settings.clickhouse_user,
            settings.clickhouse_password.get_secret_value(),
            settings.clickhouse_database,
            settings.source_statement_timeout_seconds,
            settings.source_max_memory_mb * 2**20,
        )
    )


BLOCKING_THREADS_BESIDE_ACTIVITIES = 32


def blocking_calls(settings: Settings) -> concurrent.futures.ThreadPoolExecutor:
    """The process's threads for blocking calls (`asyncio.to_thread`, name lookups): a thread for each activity
    the worker may run at once, whose destination client may block one, and as many again for everything else.
    Python's default (the CPUs plus four) lets a few slow warehouse calls hold every name lookup of the process."""
    size = settings.worker_max_concurrent_activities + BLOCKING_THREADS_BESIDE_ACTIVITIES
    return concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix="blocking-call")


def cipher_for(settings: Settings, process: str) -> ConfigCipher:
    if settings.encryption_key is None:
        raise RuntimeError(f"BATCH_EXPORTS_ENCRYPTION_KEY is not set: the {process} cannot read destination configs")
    return ConfigCipher(settings.encryption_key.get_secret_value())


@contextlib.asynccontextmanager
async def open_runtime(
    settings: Settings,
    *,
    process: str,
    client: Client | None = None,
    lazy: bool = False,
    metrics: Literal["worker", "api"] | None = None,
    tracer_provider: TracerProvider | None = None,
) -> AsyncIterator[Runtime]:
    """Open the pools (one when metadata and events share a database) and, unless given, the Temporal client.

    `lazy` connects the client on first use, so a gateway can start (and report) while Temporal is down.
    `metrics` serves Prometheus metrics on the worker's or the gateway's metrics port (when it is not 0);
    traces are sent where `OTEL_EXPORTER_OTLP_ENDPOINT` says, or to `tracer_provider`.
    """
    cipher = cipher_for(settings, process)
    logger.info("%s: event loop %s", process, event_loop.name_of(asyncio.get_running_loop()))
    async with contextlib.AsyncExitStack() as stack:
        temporal_rt = None
        if metrics is not None:
            port = settings.worker_metrics_port if metrics == "worker" else settings.api_metrics_port
            temporal_rt = temporal_runtime(settings.metrics_host, port, f"BATCH_EXPORTS_{metrics.upper()}_METRICS_PORT")
        if tracer_provider is None and (tracer_provider := tracing.provider_from_environment(process)) is not None:
            stack.callback(tracer_provider.shutdown)  # sends what is still buffered
        tracer = tracing.tracer_of(tracer_provider)
        pool = await stack.enter_async_context(await db.create_pool(settings.database_url))
        source: SourceDatabase | ClickHouse
        if settings.source == "clickhouse":
            source = clickhouse_of(settings)
            stack.callback(source.close)
        elif settings.source_dsn != settings.database_url:
            source_pool = await stack.enter_async_context(await db.create_pool(settings.source_dsn))
            source = SourceDatabase(source_pool, settings.source_dsn, settings.source_statement_timeout_seconds)
        else:
            source = SourceDatabase(pool, settings.source_dsn, settings.source_statement_timeout_seconds)
        if client is None:
            client = await temporal_client.connect(
                lazy=lazy, process=process, runtime=temporal_rt, interceptors=tracing.client_interceptors(tracer)
            )
        egress = await stack.enter_async_context(proxy.serving())
        asyncio.get_running_loop().set_default_executor(blocking_calls(settings))
        yield Runtime(
            settings,
            pool,
            source,
            client,
            cipher,
            metrics=ServiceMetrics(temporal_rt.metric_meter) if temporal_rt else ServiceMetrics(),
            tracer=tracer,
            egress=egress,
        )
