"""A stack of its own for the fault tests, so that stopping its parts disturbs no other test.

PostgreSQL, a Temporal dev server that keeps its state in a file (so that it can be stopped and started
again), and the gateway and a worker as the real processes a deployment runs (`python -m api`,
`python worker.py`), all on free loopback ports, with timeouts short enough for a fault to play out in
seconds. Their output goes to files in the stack's directory.
"""

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
from temporalio.client import Client, WorkflowHandle

from batch_exports.crypto import generate_key
from batch_exports.settings import Settings
from batch_exports.store import api_keys, db, projects
from entrypoints.embedded import LOOPBACK, EmbeddedPostgres, TemporalDevServer, free_port, wait_for_port
from tests.support.stack import API_KEY

ROOT = Path(__file__).resolve().parents[2]
PROJECT = 1
FAST = {
    "settle_delay_seconds": 0,
    "jitter_enabled": False,
    "allow_private_destinations": True,
    "run_max_attempts": 1,
    "export_max_attempts": 30,
    "export_retry_initial_seconds": 1,
    "export_heartbeat_timeout_seconds": 4,
    "shutdown_grace_seconds": 3,
    "reconcile_every_seconds": 3600,
    "max_records_per_execution": 0,
}
"""The processes' settings: each fault plays out in seconds (a lost worker is noticed after 4 s, say)."""


@dataclass
class FaultStack:
    work_dir: Path
    postgres: EmbeddedPostgres
    temporal: TemporalDevServer
    settings: Settings
    client: Client
    pool: asyncpg.Pool
    http: aiohttp.ClientSession
    env: dict[str, str]
    worker: subprocess.Popen[bytes] | None = None
    gateway: subprocess.Popen[bytes] | None = None
    _started: int = field(default=0)

    @property
    def api_url(self) -> str:
        return f"http://{LOOPBACK}:{self.settings.api_port}"

    def _spawn(self, what: str, *args: str) -> subprocess.Popen[bytes]:
        self._started += 1
        with (self.work_dir / f"{what}-{self._started}.log").open("ab") as log:
            return subprocess.Popen(
                [sys.executable, *args], env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
            )

    def start_worker(self) -> subprocess.Popen[bytes]:
        self.worker = self._spawn("worker", str(ROOT / "worker.py"))
        return self.worker

    async def start_gateway(self) -> subprocess.Popen[bytes]:
        self.gateway = self._spawn("gateway", "-m", "api")
        log = self.work_dir / f"gateway-{self._started}.log"
        await asyncio.to_thread(wait_for_port, self.settings.api_port, self.gateway, "the gateway", log)
        return self.gateway

    async def stop(self, process: subprocess.Popen[bytes] | None, signum: int = signal.SIGTERM) -> int | None:
        """Signal a process and wait for it to exit; its exit code."""
        if process is None or process.poll() is not None:
            return process.returncode if process else None
        process.send_signal(signum)
        try:
            return await asyncio.to_thread(process.wait, 30)
        except subprocess.TimeoutExpired:
            process.kill()
            await asyncio.to_thread(process.wait)
            raise

    async def stop_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.stop)

    async def start_postgres(self) -> None:
        await asyncio.to_thread(self.postgres.start)

    async def stop_temporal(self) -> None:
        await asyncio.to_thread(self.temporal.stop)

    async def start_temporal(self) -> None:
        await asyncio.to_thread(self.temporal.start)

    async def request(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        """A call to the gateway; `path` is relative to the project's prefix unless it starts with '/'."""
        url = self.api_url + (path if path.startswith("/") else f"/api/environments/{PROJECT}/{path}")
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with self.http.request(method, url, headers=headers, **kwargs) as response:
            body = await response.json() if response.content_type == "application/json" else await response.text()
            return response.status, body


async def export_attempts(handle: WorkflowHandle[Any, Any]) -> int:
    """How many attempts the run's export activity took, from the run's history."""
    attempts = 0
    async for event in handle.fetch_history_events():
        if event.HasField("activity_task_started_event_attributes"):
            attempts = max(attempts, event.activity_task_started_event_attributes.attempt)
    return attempts


@contextlib.asynccontextmanager
async def fault_stack(work_dir: Path) -> AsyncIterator[FaultStack]:
    postgres = EmbeddedPostgres(work_dir / "postgres", free_port())
    temporal = TemporalDevServer(work_dir / "temporal.db", free_port(), ui_port=None)
    await asyncio.to_thread(postgres.start)
    try:
        await asyncio.to_thread(temporal.start)
        database_url = await asyncio.to_thread(postgres.create_database, "batch_exports")
        await asyncio.to_thread(db.migrate, database_url)
        values: dict[str, Any] = {
            **FAST,
            "database_url": database_url,
            "encryption_key": generate_key(),
            "task_queue": f"faults-{uuid.uuid4().hex[:8]}",
            "api_port": free_port(),
        }
        env = {name: value for name, value in os.environ.items() if not name.startswith("BATCH_EXPORTS_")}
        env["TEMPORAL_ADDRESS"] = temporal.address
        env |= {f"BATCH_EXPORTS_{name.upper()}": str(value).lower() if isinstance(value, bool) else str(value)
                for name, value in values.items()}  # fmt: skip
        pool = await db.create_pool(database_url)
        await projects.ensure(pool, PROJECT, "Faults", "phc_faults")
        await api_keys.ensure(pool, API_KEY, label="faults")
        client = await Client.connect(temporal.address)
        async with aiohttp.ClientSession() as http:
            stack = FaultStack(work_dir, postgres, temporal, Settings(**values), client, pool, http, env)
            try:
                await stack.start_gateway()
                stack.start_worker()
                yield stack
            finally:
                await stack.stop(stack.worker)
                await stack.stop(stack.gateway)
                await pool.close()
    finally:
        await asyncio.to_thread(temporal.stop)
        await asyncio.to_thread(postgres.stop)
