"""A worker killed mid-export (SIGKILL, a real process) and a new one started: the interval ends
Completed and the destination holds each source record exactly once (count and unique uuids)."""

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from tests.conftest import Project
from tests.helpers import eventually, runs_of, start_run
from tests.test_postgres_destination import destination
from tests.test_s3_destination import bucket, config, objects

EVENTS = 200_000
ROOT = Path(__file__).resolve().parent.parent


def worker(project: Project, task_queue: str) -> subprocess.Popen[bytes]:
    settings = project.stack.settings
    assert settings.encryption_key is not None
    env = {
        **os.environ,
        "BATCH_EXPORTS_DATABASE_URL": settings.database_url,
        "BATCH_EXPORTS_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "BATCH_EXPORTS_TASK_QUEUE": task_queue,
        "BATCH_EXPORTS_SETTLE_DELAY_SECONDS": "0",
        "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS": "true",
        "BATCH_EXPORTS_MAX_RECORDS_PER_EXECUTION": "0",
        "BATCH_EXPORTS_EXPORT_RETRY_INITIAL_SECONDS": "1",
        "BATCH_EXPORTS_RECONCILE_EVERY_SECONDS": "3600",
    }
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT)


async def load_events(project: Project) -> datetime:
    at = datetime.now(UTC) - timedelta(minutes=10)
    await project.stack.pool.execute(
        """
        INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
        SELECT gen_random_uuid(), $1, 'load', 'user-' || (i % 1000),
               jsonb_build_object('i', i, 'pad', repeat('p', 200)),
               $2::timestamptz, $2::timestamptz, $2::timestamptz + i * interval '1 microsecond'
        FROM generate_series(1, $3) AS i
        """,
        project.id,
        at,
        EVENTS,
    )
    return at


async def kill_mid_export_then_recover(project: Project, export: dict[str, Any]) -> None:
    task_queue = f"killed-{uuid.uuid4().hex[:8]}"
    at = await load_events(project)
    end = at.replace(second=0, microsecond=0) + timedelta(minutes=5)
    first = worker(project, task_queue)
    try:
        await start_run(project.stack, export, start=end - timedelta(hours=1), end=end, task_queue=task_queue)

        async def moving() -> bool:
            found = await runs_of(project, export["id"])
            return bool(found) and found[0]["status"] == "Running" and found[0]["records_completed"] > 0

        await eventually(moving, within=60, every=0.1)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    (run,) = await runs_of(project, export["id"])
    assert run["status"] == "Running" and 0 < run["records_completed"] < EVENTS, run
    second = worker(project, task_queue)
    try:

        async def completed() -> dict[str, Any] | None:
            found = await runs_of(project, export["id"])
            return found[0] if found and found[0]["status"] == "Completed" else None

        run = await eventually(completed, within=120, every=0.5)
        assert run["records_completed"] == EVENTS  # counted once, not once per attempt
    finally:
        second.terminate()
        await asyncio.to_thread(second.wait, 30)


async def test_postgres_destination_survives_a_killed_worker(project: Project) -> None:
    destination_config, dsn = await destination(project)
    body = {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": destination_config}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    await kill_mid_export_then_recover(project, export)
    conn = await asyncpg.connect(dsn)
    try:
        count, unique = await conn.fetchrow("SELECT count(*), count(DISTINCT uuid) FROM events")
    finally:
        await conn.close()
    assert count == unique == EVENTS


async def test_s3_destination_survives_a_killed_worker(project: Project, s3: Any, s3_service: Any) -> None:
    name = await bucket(s3, project)
    body = {
        "name": "s3",
        "interval": "hour",
        "destination": {"type": "S3Compatible", "config": config(s3_service, name)},
    }
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    await kill_mid_export_then_recover(project, export)
    stored = await objects(s3, name)
    lines = [line for data in stored.values() for line in data.splitlines()]
    assert len(stored) == 1 and len(lines) == EVENTS
    assert len({line[:60] for line in lines}) == EVENTS  # each line starts with its own uuid
