"""A worker killed mid-export (SIGKILL, a real process) and a new one started: the interval ends
Completed and the destination holds each source record exactly once (count and unique uuids)."""

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from azure.storage.blob.aio import BlobServiceClient
from temporalio.client import WorkflowHandle

from entrypoints.azurite import Azurite
from entrypoints.bigquery import PROJECT, BigQueryEmulator
from tests.support.bigquery import bigquery_config, client_of, new_dataset
from tests.support.bigquery import rows as bigquery_rows
from tests.support.destinations import (
    azure_container,
    blobs,
    bucket,
    iceberg_metadata,
    lake_config,
    objects,
    postgres_database,
    read_table,
    s3_config,
)
from tests.support.helpers import create_export, eventually, runs_of, start_run
from tests.support.redshift import redshift_database, rows
from tests.support.snowflake import Fakesnow, new_config, query, stage_tables, table_rows
from tests.support.stack import Project, Stack

EVENTS = 200_000
HEARTBEAT_TIMEOUT_SECONDS = 8
"""How soon Temporal gives the killed worker's attempt up (the default is 20 s): the SDK sends a heartbeat every
0.8 of it, so a worker alive but slow (a loaded machine) still keeps its attempt; the test waits this long once."""
ROOT = Path(__file__).resolve().parents[2]


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
        "BATCH_EXPORTS_EXPORT_HEARTBEAT_TIMEOUT_SECONDS": str(HEARTBEAT_TIMEOUT_SECONDS),
        "BATCH_EXPORTS_RECONCILE_EVERY_SECONDS": "3600",
        **({"BATCH_EXPORTS_SNOWFLAKE_URL": settings.snowflake_url} if settings.snowflake_url else {}),
        **({"BATCH_EXPORTS_BIGQUERY_URL": settings.bigquery_url} if settings.bigquery_url else {}),
    }
    return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT)


async def load_events(project: Project, count: int = EVENTS) -> datetime:
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
        count,
    )
    return at


async def checkpoint(handle: WorkflowHandle[Any, Any]) -> dict[str, Any] | None:
    """The export's last heartbeated checkpoint, as the Temporal server holds it."""
    for pending in (await handle.describe()).raw_description.pending_activities:
        if pending.heartbeat_details.payloads:
            return json.loads(pending.heartbeat_details.payloads[0].data)  # type: ignore[no-any-return]
    return None


Midway = Callable[[WorkflowHandle[Any, Any]], Awaitable[bool]]


async def kill_mid_export_then_recover(
    project: Project,
    export: dict[str, Any],
    midway: Midway,
    events: int = EVENTS,
    killed: Callable[[], Awaitable[None]] | None = None,
) -> datetime:
    """Kill the worker once `midway` says the run is in the middle of its export (`killed` then looks at what
    it left), start another; return when it was killed."""
    task_queue = f"killed-{uuid.uuid4().hex[:8]}"
    at = await load_events(project, events)
    end = at.replace(second=0, microsecond=0) + timedelta(minutes=5)
    first = worker(project, task_queue)
    try:
        handle = await start_run(project.stack, export, start=end - timedelta(hours=1), end=end, task_queue=task_queue)

        await eventually(lambda: midway(handle), within=60, every=0.05)
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    killed_at = datetime.now(UTC)
    (run,) = await runs_of(project, export["id"])
    assert run["status"] == "Running" and run["records_completed"] < events, run
    if killed is not None:
        await killed()
    await asyncio.sleep(1.5)  # anything written from here on has a later (whole-second) modification time
    second = worker(project, task_queue)
    try:

        async def completed() -> dict[str, Any] | None:
            found = await runs_of(project, export["id"])
            return found[0] if found and found[0]["status"] == "Completed" else None

        run = await eventually(completed, within=120, every=0.5)
        assert run["records_completed"] == events  # counted once, not once per attempt
    finally:
        second.terminate()
        await asyncio.to_thread(second.wait, 30)
    assert await heartbeat_timeouts(handle) == {HEARTBEAT_TIMEOUT_SECONDS}  # the lost worker was noticed this soon
    return killed_at


async def heartbeat_timeouts(handle: WorkflowHandle[Any, Any]) -> set[float]:
    """The heartbeat timeouts the run gave its export activities, from its history."""
    return {
        event.activity_task_scheduled_event_attributes.heartbeat_timeout.ToTimedelta().total_seconds()
        async for event in handle.fetch_history_events()
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == "export-interval"
    }


async def test_postgres_destination_survives_a_killed_worker(project: Project) -> None:
    destination_config, dsn = await postgres_database(project)
    body = {"name": "pg", "interval": "hour", "destination": {"type": "Postgres", "config": destination_config}}
    export = await create_export(project, body)

    conn = await asyncpg.connect(dsn)

    async def staging(handle: WorkflowHandle[Any, Any]) -> bool:  # the writer's transaction is open: rows staged
        sql = """SELECT EXISTS (SELECT FROM pg_stat_activity WHERE datname = current_database()
                 AND pid <> pg_backend_pid() AND backend_type = 'client backend' AND xact_start IS NOT NULL)"""
        return await conn.fetchval(sql)  # type: ignore[no-any-return]

    try:
        await kill_mid_export_then_recover(project, export, staging)
        count, unique = await conn.fetchrow("SELECT count(*), count(DISTINCT uuid) FROM events")
    finally:
        await conn.close()
    assert count == unique == EVENTS


async def test_redshift_destination_survives_a_killed_worker(project: Project) -> None:
    database = await redshift_database(project)
    export = await create_export(project, {"name": "redshift", "interval": "hour",
                                           "destination": {"type": "Redshift", "config": database.config}})  # fmt: skip
    stages = "SELECT tablename FROM pg_tables WHERE tablename LIKE 'bx_stage_%'"

    async def staging(handle: WorkflowHandle[Any, Any]) -> bool:  # the attempt's stage holds rows; none applied
        found = await rows(database, stages)
        return bool(found) and bool(await rows(database, f"SELECT 1 FROM posthog_exports.{found[0]['tablename']}"))

    async def stage_left_and_nothing_applied() -> None:
        assert len(await rows(database, stages)) == 1
        assert await rows(database, "SELECT count(*) AS n FROM posthog_exports.events") == [{"n": 0}]

    await kill_mid_export_then_recover(project, export, staging, killed=stage_left_and_nothing_applied)
    (held,) = await rows(database, "SELECT count(*) AS n, count(DISTINCT uuid) AS u FROM posthog_exports.events")
    assert held == {"n": EVENTS, "u": EVENTS}
    assert await rows(database, stages) == []  # the dead attempt's stage went with the next attempt


async def test_s3_destination_survives_a_killed_worker(project: Project, s3: Any, s3_service: Any) -> None:
    name = await bucket(s3, project)
    body = {
        "name": "s3",
        "interval": "hour",
        "destination": {"type": "S3Compatible", "config": s3_config(s3_service, name)},
    }
    export = await create_export(project, body)

    async def uploading(handle: WorkflowHandle[Any, Any]) -> bool:  # a multipart upload has begun
        return bool((await s3.list_multipart_uploads(Bucket=name)).get("Uploads"))

    await kill_mid_export_then_recover(project, export, uploading)
    stored = await objects(s3, name)
    lines = [line for data in stored.values() for line in data.splitlines()]
    assert len(stored) == 1 and len(lines) == EVENTS
    assert len({line[:60] for line in lines}) == EVENTS  # each line starts with its own uuid


async def test_split_files_resume_after_the_last_complete_one(project: Project, s3: Any, s3_service: Any) -> None:
    events = 1_500_000  # about 400 files of 1 MB: the export outlasts the 2 s between heartbeats several times
    name = await bucket(s3, project)
    body = {
        "name": "s3-split",
        "interval": "hour",
        "destination": {"type": "S3Compatible", "config": s3_config(s3_service, name, max_file_size_mb=1)},
    }
    export = await create_export(project, body)

    async def two_files_done(handle: WorkflowHandle[Any, Any]) -> bool:
        return ((await checkpoint(handle)) or {}).get("files", 0) >= 2

    killed_at = await kill_mid_export_then_recover(project, export, two_files_done, events)

    listed = (await s3.list_objects_v2(Bucket=name, MaxKeys=1000))["Contents"]
    modified = {item["Key"]: item["LastModified"] for item in listed}
    stored = await objects(s3, name)
    (manifest_key,) = [key for key in stored if key.endswith("_manifest.json")]
    files = json.loads(stored.pop(manifest_key))["files"]
    assert set(files) == set(stored)
    uuids = [line[:60] for key in files for line in stored[key].splitlines()]  # each line starts with its uuid
    assert len(uuids) == len(set(uuids)) == events
    # The files done before the kill were kept, not written again: the new worker resumed after them.
    assert modified[files[0]] <= killed_at and modified[files[1]] <= killed_at
    assert max(modified.values()) > killed_at


async def test_iceberg_destination_survives_a_killed_worker(project: Project, s3: Any, s3_service: Any) -> None:
    config = lake_config(s3_service, await bucket(s3, project), prefix="lake", table_name="events")
    export = await create_export(project, {"name": "iceberg", "interval": "hour",
                                           "destination": {"type": "Iceberg", "config": config}})  # fmt: skip

    async def uncommitted() -> bool:  # the table is made at the first batch, its first snapshot by the commit
        table = await iceberg_metadata(project, config, s3_service)
        return table is not None and table.current_snapshot() is None

    await kill_mid_export_then_recover(project, export, lambda _: uncommitted(), killed=lambda: _holds(uncommitted))
    table = await read_table("Iceberg", project, config, s3_service)
    assert table is not None and table.num_rows == len(set(table.column("uuid").to_pylist())) == EVENTS


async def test_delta_lake_destination_survives_a_killed_worker(project: Project, s3: Any, s3_service: Any) -> None:
    name = await bucket(s3, project)
    config = lake_config(s3_service, name, prefix="lake", table_name="events")
    export = await create_export(project, {"name": "delta", "interval": "hour",
                                           "destination": {"type": "DeltaLake", "config": config}})  # fmt: skip
    log = "lake/events/_delta_log/"

    async def uncommitted() -> bool:  # the table is made (version 0) at the first batch, version 1 by the commit
        listed = await s3.list_objects_v2(Bucket=name, Prefix=log)
        return [item["Key"] for item in listed.get("Contents", [])] == [f"{log}{0:020d}.json"]

    await kill_mid_export_then_recover(project, export, lambda _: uncommitted(), killed=lambda: _holds(uncommitted))
    table = await read_table("DeltaLake", project, config, s3_service)
    assert table is not None and table.num_rows == len(set(table.column("uuid").to_pylist())) == EVENTS


async def test_azure_blob_destination_survives_a_killed_worker(project: Project, azurite: Azurite) -> None:
    container = await azure_container(azurite, project)
    config = {"container_name": container, "connection_string": azurite.connection_string}
    export = await create_export(project, {"name": "azure", "interval": "hour",
                                           "destination": {"type": "AzureBlob", "config": config}})  # fmt: skip

    async def staged_not_committed() -> bool:  # blocks are staged, and no blob is there to read
        async with BlobServiceClient.from_connection_string(azurite.connection_string) as client:
            listing = client.get_container_client(container)
            found = [blob async for blob in listing.list_blobs(include=["uncommittedblobs"])]
            committed = [blob async for blob in listing.list_blobs()]
        return bool(found) and not committed

    await kill_mid_export_then_recover(
        project, export, lambda _: staged_not_committed(), killed=lambda: _holds(staged_not_committed)
    )
    stored = await blobs(azurite, container)
    lines = [line for data in stored.values() for line in data.splitlines()]
    assert len(stored) == 1 and len(lines) == len({line[:60] for line in lines}) == EVENTS


async def test_snowflake_destination_survives_a_killed_worker(
    project: Project, snowflake_stack: Stack, fakesnow: Fakesnow
) -> None:
    config = new_config()
    export = await create_export(project, {"name": "snowflake", "interval": "hour",
                                           "destination": {"type": "Snowflake", "config": config}})  # fmt: skip

    async def staged_not_applied() -> bool:  # the attempt's stage table is there, the target has no row yet
        if not await stage_tables(fakesnow, config):
            return False
        return not await query(fakesnow, config, f'SELECT 1 FROM "{config["table_name"]}" LIMIT 1')

    await kill_mid_export_then_recover(
        project, export, lambda _: staged_not_applied(), killed=lambda: _holds(staged_not_applied)
    )
    uuids = [row["uuid"] for row in await table_rows(fakesnow, config)]
    assert len(uuids) == len(set(uuids)) == EVENTS
    assert await stage_tables(fakesnow, config) == []  # the dead attempt's stage went with the next attempt


async def _holds(condition: Callable[[], Awaitable[bool]]) -> None:
    """What the killed worker left: nothing a reader sees."""
    assert await condition()


async def test_bigquery_destination_survives_a_killed_worker(
    project: Project, bigquery_server: BigQueryEmulator
) -> None:
    client = client_of(bigquery_server)
    dataset = await asyncio.to_thread(new_dataset, client)
    export = await create_export(project, {"name": "bigquery", "interval": "hour", "destination": {
        "type": "BigQuery", "config": bigquery_config(dataset)}})  # fmt: skip

    def tables() -> list[str]:
        return [t.table_id for t in client.list_tables(dataset)]

    async def staged_not_applied() -> bool:  # a stage exists, and the target holds nothing
        names = await asyncio.to_thread(tables)
        staged = any(name.startswith("bx_stage_") for name in names)
        return staged and ("events" not in names or not await asyncio.to_thread(bigquery_rows, client, dataset))

    await kill_mid_export_then_recover(
        project, export, lambda _: staged_not_applied(), killed=lambda: _holds(staged_not_applied)
    )
    (counted,) = client.query(f"SELECT COUNT(*) AS n, COUNT(DISTINCT uuid) AS u FROM `{PROJECT}.{dataset}.events`")
    assert counted["n"] == counted["u"] == EVENTS
    assert sorted(await asyncio.to_thread(tables)) == ["bx_run_marks", "events"]  # the lost attempt's stage dropped
