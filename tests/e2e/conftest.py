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

import aiohttp
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from pydantic import SecretStr

from api.app import create_app
from batch_exports.crypto import generate_key
from batch_exports.runtime import open_runtime
from batch_exports.settings import Settings
from batch_exports.store import api_keys, db, projects
from entrypoints.azurite import Azurite
from entrypoints.bigquery import BigQueryEmulator
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.bigquery import running_bigquery
from tests.support.scratch import scratch_directory
from tests.support.seaweed import SeaweedS3
from tests.support.services import Services, start_services
from tests.support.stack import API_KEY, Project, Stack, connect_with_retry
from worker import build_worker


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
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    await asyncio.to_thread(db.migrate, settings.database_url)
    client = await connect_with_retry()
    async with open_runtime(settings, process="test stack", client=client) as rt:
        await projects.ensure(rt.pool, 1, "Default project", "phc_default")
        await api_keys.ensure(rt.pool, API_KEY, label="tests")
        runner = web.AppRunner(create_app(settings, rt), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        try:
            async with build_worker(rt), aiohttp.ClientSession() as http:
                yield Stack(rt, http, f"http://{LOOPBACK}:{port}")
        finally:
            await runner.cleanup()
