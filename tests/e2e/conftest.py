"""Session fixtures of the end-to-end tier: real PostgreSQL, Temporal, S3 (see tests/support) and Azure Blob
Storage (Azurite), the worker and the gateway.

The stack runs in the test session's event loop: the worker polls a task queue of its own and the
gateway listens on a free loopback port.
"""

import asyncio
import os
import signal
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiobotocore.session import get_session
from pydantic import SecretStr

from batch_exports.crypto import generate_key
from batch_exports.settings import Settings
from batch_exports.store import db
from entrypoints.azurite import Azurite
from entrypoints.bigquery import BigQueryEmulator
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.bigquery import running_bigquery
from tests.support.clickhouse import ClickHouseAccount, ClickHouseStandIn
from tests.support.posthog_tables import PostHogClickHouse
from tests.support.scratch import scratch_directory
from tests.support.seaweed import SeaweedS3
from tests.support.services import Services, start_services
from tests.support.snowflake import fakesnow, snowflake_stack  # noqa: F401 (fixtures of the Snowflake tests)
from tests.support.stack import Project, Stack, serving


def pytest_configure(config: pytest.Config) -> None:
    """A SIGTERM (a CI timeout, `kill`) ends the session as Ctrl-C does, so the fixtures' teardown stops the
    services they started: each runs in a session of its own and would otherwise outlive the tests."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    """The services' data (gigabytes by the end): removed after the session unless BATCH_EXPORTS_KEEP_TEST_DATA."""
    with scratch_directory("batch-exports-tests-", keep=bool(os.environ.get("BATCH_EXPORTS_KEEP_TEST_DATA"))) as path:
        yield path


@pytest.fixture(scope="session")
def services(work_dir: Path) -> Iterator[Services]:
    with start_services(work_dir) as services:
        os.environ["TEMPORAL_ADDRESS"] = services.temporal_address
        # Worker and gateway processes the tests start serve no metrics unless a test gives them a port:
        # the default ports may be taken on a shared machine.
        os.environ.setdefault("BATCH_EXPORTS_WORKER_METRICS_PORT", "0")
        os.environ.setdefault("BATCH_EXPORTS_API_METRICS_PORT", "0")
        yield services


@pytest.fixture(scope="session")
def bigquery_port() -> int:
    """The port the session's BigQuery emulator takes when a test first asks for it (`bigquery`): the worker's
    `BATCH_EXPORTS_BIGQUERY_URL` names it from the start."""
    return free_port()


@pytest.fixture(scope="session")
def settings(services: Services, work_dir: Path, bigquery_port: int) -> Settings:
    return Settings(
        database_url=services.database_url,
        encryption_key=SecretStr(generate_key()),
        task_queue=f"batch-exports-tests-{uuid.uuid4().hex[:8]}",
        settle_delay_seconds=0,
        jitter_enabled=False,
        allow_private_destinations=True,
        run_max_attempts=2,
        run_retry_initial_seconds=1,
        export_max_attempts=1,
        export_retry_initial_seconds=1,
        max_records_per_execution=100,
        auto_pause_after_failures=3,
        backfill_concurrency=4,
        max_running_backfills_per_project=3,
        file_destination_root=work_dir / "exports",
        data_dir=work_dir,
        worker_metrics_port=0,
        api_metrics_port=0,
        bigquery_url=f"http://{LOOPBACK}:{bigquery_port}",
        # In-process workers run the workflows in Temporal's sandbox, which catches non-deterministic code; the worker
        # processes (`tests.support.processes`, `faults`) run them as the service does by default, without it.
        workflow_sandbox=True,
    )


@pytest.fixture(scope="session")
def s3_service(work_dir: Path) -> Iterator[SeaweedS3]:
    with SeaweedS3(work_dir / "seaweed").start() as service:
        yield service


@pytest.fixture(scope="session")
def azurite(work_dir: Path) -> Iterator[Azurite]:
    with Azurite(work_dir / "azurite", free_port()).start() as service:
        yield service


@pytest.fixture(scope="session")
def bigquery_server(work_dir: Path, bigquery_port: int) -> Iterator[BigQueryEmulator]:
    with running_bigquery(work_dir / "bqemulator", bigquery_port) as emulator:
        yield emulator


@pytest.fixture
async def s3(s3_service: SeaweedS3) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=s3_service.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3_service.access_key_id, aws_secret_access_key=s3_service.secret_access_key,
    ) as client:  # fmt: skip
        yield client


@pytest.fixture
async def project(stack: Stack) -> Project:
    return await stack.new_project()


@pytest.fixture(scope="session")
def clickhouse(work_dir: Path) -> Iterator[ClickHouseAccount]:
    """The real ClickHouse server `BATCH_EXPORTS_TEST_CLICKHOUSE_URL` names, else ClickHouse's engine behind the
    stand-in HTTP layer (tests/support/clickhouse_server.py)."""
    if (given := ClickHouseAccount.given()) is not None:
        yield given
        return
    with ClickHouseStandIn(work_dir / "clickhouse").start() as server:
        yield server.account


@pytest.fixture(scope="session")
def posthog(clickhouse: ClickHouseAccount) -> PostHogClickHouse:
    """PostHog's tables in a database of their own: what a self-hosted PostHog's ClickHouse holds."""
    return PostHogClickHouse.created(clickhouse, sessions=True)


@pytest.fixture(scope="session")
async def clickhouse_stack(stack: Stack, posthog: PostHogClickHouse) -> AsyncIterator[Stack]:
    """A second worker and gateway, on the same Temporal and metadata database, reading PostHog's ClickHouse
    (`BATCH_EXPORTS_SOURCE=clickhouse`)."""
    settings = stack.settings.model_copy(update={
        "source": "clickhouse", "clickhouse_url": posthog.account.url, "clickhouse_user": posthog.account.user,
        "clickhouse_password": SecretStr(posthog.account.password), "clickhouse_database": posthog.database,
        "task_queue": f"{stack.settings.task_queue}-clickhouse",
    })  # fmt: skip
    async with serving(settings) as served:
        yield served


@pytest.fixture
async def team(clickhouse_stack: Stack) -> Project:
    """A project of the ClickHouse-reading stack: a PostHog team."""
    return await clickhouse_stack.new_project()


@pytest.fixture(params=["postgres", "clickhouse"])
def source_project(request: pytest.FixtureRequest) -> Project:
    """A project of the stack reading each source in turn: this service's PostgreSQL, then PostHog's ClickHouse
    (`helpers.ingest` writes events into either, `person_states.PersonHistory` persons)."""
    return request.getfixturevalue("project" if request.param == "postgres" else "team")  # type: ignore[no-any-return]


@pytest.fixture(scope="session")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    await asyncio.to_thread(db.migrate, settings.database_url)
    async with serving(settings) as served:
        yield served
