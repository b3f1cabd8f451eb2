"""Session fixtures: real PostgreSQL and Temporal (see tests/services), the worker and the gateway.

The stack runs in the test session's event loop: the worker polls a task queue of its own and the
gateway listens on a free loopback port.
"""

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiobotocore.session import get_session
from aiohttp import web
from pydantic import SecretStr
from temporalio.client import Client

from api.app import create_app
from batch_exports import bootstrap, db, temporal
from batch_exports.crypto import generate_key
from batch_exports.embedded import LOOPBACK, SeaweedS3, free_port, scratch_directory
from batch_exports.settings import Settings
from tests.services import Services, start_services
from worker import build_worker, pools

API_KEY = "phx_test_key_0123456789"
"""Holds both scopes on every project."""


@pytest.fixture(scope="session")
def work_dir() -> Iterator[Path]:
    """The services' data (gigabytes by the end): removed after the session unless BATCH_EXPORTS_KEEP_TEST_DATA."""
    with scratch_directory("batch-exports-tests-", keep=bool(os.environ.get("BATCH_EXPORTS_KEEP_TEST_DATA"))) as path:
        yield path


@pytest.fixture(scope="session")
def services(work_dir: Path) -> Iterator[Services]:
    with start_services(work_dir) as services:
        os.environ["TEMPORAL_ADDRESS"] = services.temporal_address
        yield services


@pytest.fixture(scope="session")
def settings(services: Services, work_dir: Path) -> Settings:
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
    )


@dataclass
class Stack:
    settings: Settings
    client: Client
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    base_url: str

    async def new_project(self) -> "Project":
        """A project of its own for one test, so tests never see each other's events or exports."""
        project_id = await self.pool.fetchval("SELECT coalesce(max(id), 0) + 1 FROM projects")
        await bootstrap.ensure_project(self.pool, project_id, f"Test project {project_id}", f"phc_{uuid.uuid4().hex}")
        token = await self.pool.fetchval("SELECT api_token FROM projects WHERE id = $1", project_id)
        return Project(self, project_id, token)


@dataclass
class Project:
    stack: Stack
    id: int
    token: str

    def url(self, path: str) -> str:
        if path.startswith("/"):
            return self.stack.base_url + path
        return f"{self.stack.base_url}/api/environments/{self.id}/{path}"

    async def request(self, method: str, path: str, *, key: str | None = API_KEY, **kwargs: Any) -> tuple[int, Any]:
        """`path` is relative to the project's API prefix, or absolute when it starts with '/'."""
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        headers.update(kwargs.pop("headers", {}))
        async with self.stack.http.request(method, self.url(path), headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


async def _connect_with_retry(attempts: int = 60) -> Client:
    for _ in range(attempts - 1):
        try:
            return await temporal.connect()
        except RuntimeError:
            await asyncio.sleep(0.5)
    return await temporal.connect()


@pytest.fixture(scope="session")
def s3_service(work_dir: Path) -> Iterator[SeaweedS3]:
    with SeaweedS3(work_dir / "seaweed").start() as service:
        yield service


@pytest.fixture
async def s3(s3_service: SeaweedS3) -> AsyncIterator[Any]:
    session = get_session()
    async with session.create_client(
        "s3", endpoint_url=s3_service.endpoint_url, region_name="us-east-1",
        aws_access_key_id=s3_service.access_key_id, aws_secret_access_key=s3_service.secret_access_key,
    ) as client:  # fmt: skip
        yield client


@pytest.fixture
async def project(stack: Stack) -> "Project":
    return await stack.new_project()


@pytest.fixture(scope="session")
async def stack(settings: Settings) -> AsyncIterator[Stack]:
    await asyncio.to_thread(db.migrate, settings.database_url)
    client = await _connect_with_retry()
    async with pools(settings) as (pool, source_pool):
        await bootstrap.ensure_default_project(pool, "phc_default", API_KEY)
        runner = web.AppRunner(create_app(settings), access_log=None)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, LOOPBACK, port).start()
        try:
            async with build_worker(client, settings, pool, source_pool), aiohttp.ClientSession() as http:
                yield Stack(settings, client, pool, http, f"http://{LOOPBACK}:{port}")
        finally:
            await runner.cleanup()
