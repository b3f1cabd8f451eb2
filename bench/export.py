"""Benchmark: one hour of N events (about 1 KB each) exported to a destination: S3 (the default) or Azure Blob
as Parquet and as gzipped JSONLines, an Iceberg or Delta Lake table (on the S3 API), or a warehouse (Redshift:
the benchmark's PostgreSQL with SUPER and JSON_PARSE; Snowflake: fakesnow; BigQuery: bqemulator), each round
beside S3 Parquet: a warehouse's own server does much of the work, so compare the worker's CPU seconds and peak memory.

    .venv/bin/python -m bench.export [--events 1000000]
                                     [--destination S3Compatible|AzureBlob|Iceberg|DeltaLake
                                                    |Redshift,Snowflake,BigQuery (one or more)]
                                     [--formats parquet,jsonl] [--source postgres|clickhouse]

Starts PostgreSQL, the Temporal dev server and SeaweedFS (an S3 API; Azurite for AzureBlob) in a temporary
directory, loads N events into one hour and prints:

- load: the average row size (`pg_column_size`) and the rows' total size;
- floor: the best of three binary COPYs of exactly what the events export reads (the events source's
  own query) into a sink that only counts bytes: reading the source and nothing else. Its bytes are
  the "source MB" every MB/s below divides;
- per format, that hour exported by the real worker, a fresh `python worker.py` process per format
  (one export attempt, so a retry fails the benchmark instead of hiding in its time), warmed up first
  by exporting an empty hour, as a long-running worker is. The hour is exported twice (the second
  run rewrites the same keys, as a retry does) and `seconds` is the better of the two export
  activities, from start to completion as Temporal's history records it (no queueing, bookkeeping or
  settle wait), as the floor is the best of its runs; `wall` is trigger (a one-interval backfill) to
  backfill Completed; `run row` is the run's created_at to finished_at; `peak RSS` is the worker's
  VmHWM (its idle RSS before the runs is shown for scale); the CPU seconds the worker, PostgreSQL and
  SeaweedFS used during a run show where a 2-core machine's time goes; `vs floor` is floor seconds /
  export seconds (1.0 would be as fast as reading the source), next to its target. The objects in
  the bucket (the blobs, the table) are read back and must hold exactly N records (Parquet and tables: N
  distinct uuids), or the benchmark fails.

With `--source clickhouse` the events are PostHog's, in its ClickHouse tables (ClickHouse's engine behind the
tests' stand-in HTTP layer, `tests/support/clickhouse_server.py`), and the worker reads them there; the floor
is then the export's own query read as ArrowStream into a sink that only counts bytes, and the stand-in's CPU
is shown as `clickhouse`.

The floor and the formats run in `--rounds` rounds (3 by default), in turn, so a noisy minute cannot favour
one; it prints each round's table with the load average, then each format's ratio to its round's floor and
the worker's CPU seconds as the median and range over the rounds.
"""

import argparse
import asyncio
import contextlib
import dataclasses
import gzip
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import psutil
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from aiobotocore.session import get_session
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from deltalake import DeltaTable
from pydantic import SecretStr
from pyiceberg.table import StaticTable
from temporalio.api.enums.v1 import EventType, TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from batch_exports.crypto import generate_key
from batch_exports.exports.validation import BatchExportIn
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.services import backfills, lifecycle
from batch_exports.settings import Settings
from batch_exports.store import db, projects
from bench import measure
from connectors.sources.clickhouse.events import ClickHouseEventsSource
from connectors.sources.events import EventsSource
from connectors.sources.reading import SourceDatabase
from entrypoints.azurite import Azurite
from entrypoints.bigquery import BigQueryEmulator
from entrypoints.embedded import EmbeddedPostgres, TemporalDevServer, free_port
from entrypoints.redshift import RedshiftDatabase, make
from entrypoints.snowflake import Fakesnow
from tests.support.bigquery import bigquery_config, client_of, new_dataset
from tests.support.clickhouse import ClickHouseStandIn
from tests.support.posthog_tables import PostHogClickHouse
from tests.support.scratch import scratch_directory
from tests.support.seaweed import SeaweedS3
from tests.support.snowflake import new_config, query

ROOT = Path(__file__).resolve().parent.parent
HOUR = datetime(2025, 1, 1, tzinfo=UTC)  # a past hour: with no settle delay the run starts at once
END = HOUR + timedelta(hours=1)
TEAM = 1
CHUNK = 250_000
FORMATS = {"parquet": ("Parquet", "zstd", 0.8), "jsonl": ("JSONLines", "gzip", 0.4)}  # format, compression, target
FILE_DESTINATIONS = ("S3Compatible", "AzureBlob")
TABLE_TARGET = 0.7
"""A table format writes Parquet and commits: its target (Iceberg, Delta Lake)."""
WAREHOUSES = ("Redshift", "Snowflake", "BigQuery")
OTHER_DESTINATIONS = (*FILE_DESTINATIONS, "Iceberg", "DeltaLake")
SERVERS = ("worker", "postgres", "weed", "clickhouse", "fakesnow", "bqemulator")
"""The processes whose CPU seconds a run prints."""
WAREHOUSE_TARGET = 0.0
"""No target against the floor: a warehouse's own server does much of the work; its worker CPU is compared to S3
Parquet's, measured in the same round."""
LOAD_EVENTS = """
INSERT INTO events (uuid, team_id, event, distinct_id, properties, person_id, person_properties, timestamp, created_at, elements_chain, inserted_at)
SELECT gen_random_uuid(), $1, (ARRAY['$pageview','$autocapture','signed_up','$pageleave'])[1 + i % 4], 'user-' || (i % 50000),
  jsonb_build_object('$current_url', 'https://example.com/products/' || (i % 997) || '?ref=campaign_' || (i % 13),
    '$browser', (ARRAY['Chrome','Firefox','Safari'])[1 + i % 3], '$browser_version', 120 + i % 10,
    '$os', 'Mac OS X', '$device_type', 'Desktop', '$screen_height', 1080, '$screen_width', 1920,
    '$referrer', 'https://www.google.com/search?q=' || md5(i::text), '$lib', 'web', '$lib_version', '1.160.0',
    '$session_id', md5((i / 20)::text), '$window_id', md5((i / 40)::text), 'plan', 'pro', 'price', (i % 100) * 1.5,
    'utm_source', 'newsletter', 'title', 'A product page with "quotes" and ünïcode ' || md5((i*7)::text),
    '$pathname', '/products/' || (i % 997), 'token', 'phc_' || md5('t'), '$insert_id', md5((i*3)::text)),
  gen_random_uuid(), jsonb_build_object('email', 'user' || (i % 50000) || '@example.com', 'name', 'User ' || (i % 50000), 'plan', 'pro', '$initial_browser', 'Chrome'),
  $2::timestamptz + i * $3::interval, $2::timestamptz + i * $3::interval,
  CASE WHEN i % 4 = 1 THEN 'button.btn.btn-primary:attr__class="btn btn-primary"nth-child="2"nth-of-type="1"text="Buy now";div.container:nth-child="1"' ELSE '' END,
  $2::timestamptz + i * $3::interval
FROM generate_series($4::bigint, $5::bigint) AS i
"""  # noqa: E501  (the load statement of the experiments, kept as written)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def cpu_seconds() -> dict[str, float]:
    """CPU time so far of the benchmark's own processes: its worker, PostgreSQL, SeaweedFS, fakesnow, bqemulator
    (only this process's descendants: on a shared machine other sessions run workers and databases of their own)."""
    used: dict[str, float] = {}
    for process in psutil.Process().children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            cmdline = " ".join(process.cmdline())
            name = "worker" if "worker.py" in cmdline else process.name()
            name = "clickhouse" if "clickhouse_server" in cmdline else name
            name = "fakesnow" if "fakesnow" in cmdline else name
            name = "bqemulator" if "bqemulator" in cmdline else name
            if name in SERVERS:
                times = process.cpu_times()
                used[name] = used.get(name, 0.0) + times.user + times.system
                if name == "postgres" and "postgres: " not in cmdline:  # the postmaster: its ended backends too
                    used[name] += times.children_user + times.children_system
    return used


def memory_mb(pid: int, field: str) -> float:
    """VmHWM (peak resident set) or VmRSS of a live process, in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/{pid}/status")


def tail(path: Path, lines: int = 30) -> str:
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


async def load(pool: asyncpg.Pool, events: int) -> None:
    began = time.perf_counter()
    step = timedelta(microseconds=3_600_000_000 // events)  # all N inside the hour
    for first in range(0, events, CHUNK):
        await pool.execute(LOAD_EVENTS, TEAM, HOUR, step, first, min(events, first + CHUNK) - 1)
    await pool.execute("VACUUM ANALYZE events")
    avg, total = await pool.fetchrow("SELECT avg(pg_column_size(e.*)), sum(pg_column_size(e.*)) FROM events e")
    print(f"load:   {events:,} events in {time.perf_counter() - began:.1f} s; "
          f"average row {avg:.0f} B, {total / 1e6:.0f} MB in all", flush=True)  # fmt: skip


LOAD_CLICKHOUSE = """
INSERT INTO events (uuid, event, properties, timestamp, team_id, distinct_id, elements_chain, created_at, person_id,
                    person_created_at, person_properties, person_mode, _timestamp, _offset, inserted_at)
SELECT generateUUIDv4(number), ['$pageview', '$autocapture', 'signed_up', '$pageleave'][1 + i % 4],
  toJSONString(map('$current_url', concat('https://example.com/products/', toString(i % 997), '?ref=campaign_',
      toString(i % 13)), '$browser', ['Chrome', 'Firefox', 'Safari'][1 + i % 3], '$browser_version',
      toString(120 + i % 10), '$os', 'Mac OS X', '$device_type', 'Desktop', '$referrer',
      concat('https://www.google.com/search?q=', hex(MD5(toString(i)))), '$lib', 'web', '$lib_version', '1.160.0',
      '$session_id', hex(MD5(toString(intDiv(i, 20)))), '$window_id', hex(MD5(toString(intDiv(i, 40)))),
      'plan', 'pro', 'utm_source', 'newsletter', '$pathname', concat('/products/', toString(i % 997)),
      'title', concat('A product page with "quotes" and ünïcode ', hex(MD5(toString(i * 7)))),
      '$insert_id', hex(MD5(toString(i * 3))))),
  at, {team:Int64}, concat('user-', toString(i % 50000)),
  if(i % 4 = 1, 'button.btn.btn-primary:attr__class="btn btn-primary"nth-child="2"nth-of-type="1"text="Buy now"', ''),
  at, generateUUIDv4(number + 1), at,
  toJSONString(map('email', concat('user', toString(i % 50000), '@example.com'), 'plan', 'pro')), 'full',
  toDateTime(at), 0, at
FROM (SELECT number, number AS i, {hour:DateTime64(6, 'UTC')} + toIntervalMicrosecond(number * {step:Int64}) AS at
      FROM numbers({first:UInt64}, {count:UInt64}))
"""
"""PostHog's events as its ingestion writes them, shaped as the PostgreSQL load's."""


async def load_clickhouse(posthog: PostHogClickHouse, events: int) -> None:
    began = time.perf_counter()
    step = 3_600_000_000 // events
    client = posthog.client()
    for first in range(0, events, CHUNK):
        params = {"team": str(TEAM), "hour": HOUR.strftime("%Y-%m-%d %H:%M:%S"), "step": str(step),
                  "first": str(first), "count": str(min(CHUNK, events - first))}  # fmt: skip
        answer = await asyncio.to_thread(client.post, LOAD_CLICKHOUSE, params, "TabSeparated")
        answer.close()
    (row,) = await asyncio.to_thread(
        client.rows, "SELECT count() AS n, sum(length(properties)) AS size FROM events", {}
    )
    print(f"load:   {int(row['n']):,} events into ClickHouse in {time.perf_counter() - began:.1f} s; "
          f"{int(row['size']) / 1e6:.0f} MB of properties", flush=True)  # fmt: skip


def read_clickhouse_once(posthog: PostHogClickHouse) -> int:
    """The export's own query, its ArrowStream answer counted and dropped."""
    sql, p = ClickHouseEventsSource(posthog.client(), TEAM).query(HOUR, END)
    size = 0
    with posthog.client().post(sql, p.values, "ArrowStream") as answer:
        for chunk in answer.iter_content(2**20):
            size += len(chunk)
    return size


async def copy_once(pool: asyncpg.Pool) -> int:
    size = 0

    async def sink(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)

    async with pool.acquire() as conn:
        # Exactly what the export reads: the events source's own query.
        query, params, _ = EventsSource(SourceDatabase(pool, ""), TEAM).query(HOUR, END)
        await conn.copy_from_query(query, *params.values, output=sink, format="binary")
    return size


async def floor(pool: asyncpg.Pool, events: int, posthog: "PostHogClickHouse | None") -> tuple[float, int]:
    timings = []
    for _ in range(3):
        began = time.perf_counter()
        size = await (copy_once(pool) if posthog is None else asyncio.to_thread(read_clickhouse_once, posthog))
        timings.append(time.perf_counter() - began)
    best = min(timings)
    what = "binary COPY" if posthog is None else "ArrowStream from ClickHouse"
    print(f"floor:  {best:.2f} s (runs: {', '.join(f'{t:.2f}' for t in timings)}), {events / best:,.0f} rows/s, "
          f"{size / 1e6 / best:.0f} MB/s over {size / 1e6:.0f} MB of {what}", flush=True)  # fmt: skip
    return best, size


def start_worker(settings: Settings, key: str, log: Path) -> subprocess.Popen[bytes]:
    source = {}
    if settings.source == "clickhouse":
        source = {"BATCH_EXPORTS_SOURCE": "clickhouse", "BATCH_EXPORTS_CLICKHOUSE_URL": str(settings.clickhouse_url),
                  "BATCH_EXPORTS_CLICKHOUSE_USER": settings.clickhouse_user,
                  "BATCH_EXPORTS_CLICKHOUSE_PASSWORD": settings.clickhouse_password.get_secret_value(),
                  "BATCH_EXPORTS_CLICKHOUSE_DATABASE": settings.clickhouse_database}  # fmt: skip
    env = {**os.environ, **source,
           "BATCH_EXPORTS_DATABASE_URL": settings.database_url, "BATCH_EXPORTS_ENCRYPTION_KEY": key,
           "BATCH_EXPORTS_TASK_QUEUE": settings.task_queue, "BATCH_EXPORTS_SETTLE_DELAY_SECONDS": "0",
           "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS": "true", "BATCH_EXPORTS_MAX_RECORDS_PER_EXECUTION": "0",
           "BATCH_EXPORTS_EXPORT_MAX_ATTEMPTS": "1", "BATCH_EXPORTS_RECONCILE_EVERY_SECONDS": "3600",
           "BATCH_EXPORTS_DATA_DIR": str(settings.data_dir)}  # fmt: skip
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, str(ROOT / "worker.py")], env=env, cwd=ROOT, stdout=out, stderr=out)


async def wait_until(ready: Any, worker: subprocess.Popen[bytes], log: Path, what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not await ready():
        if worker.poll() is not None:
            raise SystemExit(f"the worker exited ({worker.returncode}) while {what}; {log}:\n{tail(log)}")
        if time.monotonic() > deadline:
            raise SystemExit(f"the worker was still {what} after {within:.0f} s; {log}:\n{tail(log)}")
        await asyncio.sleep(0.2)


async def activity_seconds(client: Client, workflow_id: str, run_id: str) -> tuple[float, int]:
    """Start to completion of the run's export activity (its only non-local activity), and its attempt."""
    history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
    at = {e.event_type: e for e in history.events}
    started = at[EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]
    completed = at[EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED]
    seconds = (completed.event_time.ToDatetime() - started.event_time.ToDatetime()).total_seconds()
    return seconds, started.activity_task_started_event_attributes.attempt


def count_records(path: Path, parquet: bool) -> int:
    if parquet:
        uuids = pq.read_table(path, columns=["uuid"]).column("uuid")
        if (distinct := pc.count_distinct(uuids).as_py()) != len(uuids):
            raise SystemExit(f"{path.name}: {len(uuids):,} records but {distinct:,} distinct uuids")
        return len(uuids)
    with gzip.open(path, "rb") as lines:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: lines.read(1 << 24), b""))


async def counted(body: Any, work: Path, parquet: bool) -> int:
    """The records of one object (`body` streams its bytes), downloaded to disk, counted, removed."""
    path = work / "object"
    out = await asyncio.to_thread(path.open, "wb")
    with out:
        async for chunk in body:
            out.write(chunk)
    try:
        return await asyncio.to_thread(count_records, path, parquet)
    finally:
        path.unlink()


async def stored_in_bucket(s3: Any, bucket: str, work: Path, parquet: bool) -> tuple[int, int, int]:
    """Records, objects and bytes in the bucket."""
    records = size = 0
    contents = (await s3.list_objects_v2(Bucket=bucket)).get("Contents", [])
    for item in contents:
        size += item["Size"]
        response = await s3.get_object(Bucket=bucket, Key=item["Key"])
        records += await counted(response["Body"].iter_chunks(1 << 22), work, parquet)
    return records, len(contents), size


async def stored_in_container(azurite: Azurite, container: str, work: Path, parquet: bool) -> tuple[int, int, int]:
    """Records, blobs and bytes in the container (read with the Azure SDK)."""
    records = size = blobs = 0
    async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as client:
        listing = client.get_container_client(container)
        async for item in listing.list_blobs():
            blobs, size = blobs + 1, size + item.size
            body = (await listing.download_blob(item.name)).chunks()
            records += await counted(body, work, parquet)
    return records, blobs, size


def distinct(uuids: pa.ChunkedArray, what: str) -> int:
    if (count := pc.count_distinct(uuids).as_py()) != len(uuids):
        raise SystemExit(f"{what}: {len(uuids):,} records but {count:,} distinct uuids")
    return len(uuids)


async def stored_in_snowflake(fakesnow: Fakesnow, config: dict[str, Any]) -> tuple[int, int, int]:
    """Records in the table, read with the connector (one table, no file); fails if a uuid repeats."""
    ((records, unique),) = await query(fakesnow, config, 'SELECT COUNT(*), COUNT(DISTINCT "uuid") FROM "events"')
    if records != unique:
        raise SystemExit(f"Snowflake: {records:,} records but {unique:,} distinct uuids")
    return records, 1, 0


async def stored_in_bigquery(emulator: BigQueryEmulator, dataset: str) -> tuple[int, int, int]:
    """Records in the table, read with the official client (one table, no file); fails if a uuid repeats."""

    def read() -> tuple[int, int]:
        sql = f"SELECT COUNT(*) AS n, COUNT(DISTINCT uuid) AS d FROM `{dataset}.events`"
        (row,) = client_of(emulator).query(sql).result()
        return row["n"], row["d"]

    records, unique = await asyncio.to_thread(read)
    if records != unique:
        raise SystemExit(f"BigQuery: {records:,} records but {unique:,} distinct uuids")
    return records, 1, 0


async def stored_in_iceberg(pool: asyncpg.Pool, seaweed: SeaweedS3, bucket: str) -> tuple[int, int, int]:
    """Records, data files and their bytes of the table, read by pyiceberg from its current metadata file."""
    sql = "SELECT metadata_location FROM iceberg_catalog.iceberg_tables WHERE metadata_location LIKE $1"
    location = await pool.fetchval(sql, f"s3://{bucket}/%")
    properties = {"s3.endpoint": seaweed.endpoint_url, "s3.access-key-id": seaweed.access_key_id,
                  "s3.secret-access-key": seaweed.secret_access_key, "s3.region": "us-east-1"}  # fmt: skip

    def read() -> tuple[int, int, int]:
        scan = StaticTable.from_metadata(location, properties=properties).scan(selected_fields=("uuid",))
        files = [task.file for task in scan.plan_files()]
        records = distinct(scan.to_arrow().column("uuid"), "the Iceberg table")
        return records, len(files), sum(f.file_size_in_bytes for f in files)

    return await asyncio.to_thread(read)


async def stored_in_delta(seaweed: SeaweedS3, bucket: str) -> tuple[int, int, int]:
    """Records, data files and their bytes of the table, read by delta-rs."""
    options = {"AWS_ENDPOINT_URL": seaweed.endpoint_url, "AWS_ACCESS_KEY_ID": seaweed.access_key_id,
               "AWS_SECRET_ACCESS_KEY": seaweed.secret_access_key, "AWS_REGION": "us-east-1",
               "AWS_ALLOW_HTTP": "true"}  # fmt: skip

    def read() -> tuple[int, int, int]:
        table = DeltaTable(f"s3://{bucket}/lake/events", storage_options=options)
        actions = pa.table(table.get_add_actions(flatten=True))
        records = distinct(table.to_pyarrow_table(columns=["uuid"]).column("uuid"), "the Delta table")
        return records, actions.num_rows, pc.sum(actions.column("size_bytes")).as_py()

    return await asyncio.to_thread(read)


async def stored_in_redshift(database: RedshiftDatabase) -> tuple[int, int, int]:
    """Records of the table (all distinct uuids), one table, its size on disk."""
    conn = await asyncpg.connect(database.url)
    try:
        sql = ("SELECT count(*), count(DISTINCT uuid), pg_total_relation_size('posthog_exports.events') "
               "FROM posthog_exports.events")  # fmt: skip
        records, unique, size = await conn.fetchrow(sql)
    finally:
        await conn.close()
    if records != unique:
        raise SystemExit(f"the Redshift table: {records:,} records but {unique:,} distinct uuids")
    return records, 1, size


@dataclass
class Case:
    """One export measured: its destination and config, its target, and how to read back what it wrote."""

    label: str
    name: str
    destination: str
    config: dict[str, Any]
    target: float
    stored: Callable[[], Awaitable[tuple[int, int, int]]]


@dataclass
class Bench:
    rt: Runtime
    key: str
    s3: Any
    seaweed: SeaweedS3
    azurite: Azurite | None
    fakesnow: Fakesnow | None
    bigquery: BigQueryEmulator | None
    work: Path
    events: int
    timeout: float

    async def case(self, destination: str, name: str, round_: int = 1) -> Case:
        """The export of `destination` (in format `name`, for one that writes files), into a new place."""
        place, work = f"bench-{destination.lower()}-{name}-{round_}", self.work
        s3_keys = {"aws_access_key_id": self.seaweed.access_key_id,
                   "aws_secret_access_key": self.seaweed.secret_access_key}  # fmt: skip
        if destination == "Redshift":
            owner = place.replace("-", "_")  # the database and its owner
            database = await make(self.rt.settings.database_url, owner, owner, f"pw-{uuid.uuid4().hex}")
            return Case("Redshift", name, destination, database.config, WAREHOUSE_TARGET,
                        lambda: stored_in_redshift(database))  # fmt: skip
        if destination in ("Iceberg", "DeltaLake"):
            await self.s3.create_bucket(Bucket=place)
            config = {"storage": "S3Compatible", "endpoint_url": self.seaweed.endpoint_url, "bucket_name": place,
                      "prefix": "lake", "table_name": "events", **s3_keys}  # fmt: skip
            if destination == "Iceberg":
                return Case("Iceberg", name, destination, config, TABLE_TARGET,
                            lambda: stored_in_iceberg(self.rt.pool, self.seaweed, place))  # fmt: skip
            return Case("DeltaLake", name, destination, config, TABLE_TARGET,
                        lambda: stored_in_delta(self.seaweed, place))  # fmt: skip
        if destination == "Snowflake":
            fakesnow = self.fakesnow
            assert fakesnow is not None
            config = new_config(table_name="events")
            return Case("Snowflake", name, destination, config, WAREHOUSE_TARGET,
                        lambda: stored_in_snowflake(fakesnow, config))  # fmt: skip
        if destination == "BigQuery":
            emulator = self.bigquery
            assert emulator is not None
            dataset = await asyncio.to_thread(new_dataset, client_of(emulator))
            return Case("BigQuery", name, destination, bigquery_config(dataset), WAREHOUSE_TARGET,
                        lambda: stored_in_bigquery(emulator, dataset))  # fmt: skip
        file_format, compression, target = FORMATS[name]
        formats = {"file_format": file_format, "compression": compression}
        parquet = file_format == "Parquet"
        if destination == "AzureBlob":
            azurite = self.azurite
            assert azurite is not None
            async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as client:
                await client.create_container(place)
            config = {"container_name": place, "connection_string": azurite.connection_string, **formats}
            return Case(f"Azure {file_format}/{compression}", name, destination, config, target,
                        lambda: stored_in_container(azurite, place, work, parquet))  # fmt: skip
        await self.s3.create_bucket(Bucket=place)
        config = {"endpoint_url": self.seaweed.endpoint_url, "bucket_name": place, "region": "us-east-1", **s3_keys,
                  **formats}  # fmt: skip
        return Case(f"{file_format}/{compression}", name, destination, config, target,
                    lambda: stored_in_bucket(self.s3, place, work, parquet))  # fmt: skip


async def export_one(bench: Bench, case: Case) -> tuple[float, float, float]:
    """Export the hour to one place with a fresh worker process; its activity seconds, peak RSS MB and the worker's
    CPU seconds (the best of the two exports each)."""
    pool, client, events, work = bench.rt.pool, bench.rt.client, bench.events, bench.work
    name, log = case.label, work / f"worker-{case.destination}-{case.name}.log"
    queue = f"bench-export-{case.destination.lower()}-{case.name}-{uuid.uuid4().hex[:6]}"
    settings = bench.rt.settings.model_copy(update={"task_queue": queue})
    rt = dataclasses.replace(bench.rt, settings=settings)
    body = BatchExportIn.model_validate({"name": f"bench {name}", "interval": "hour", "paused": True,
                                         "destination": {"type": case.destination, "config": case.config}})  # fmt: skip
    export = await lifecycle.create(rt, TEAM, body)
    worker = start_worker(settings, bench.key, log)
    try:
        request = DescribeTaskQueueRequest(namespace=client.namespace, task_queue=TaskQueue(name=settings.task_queue),
                                           task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY)  # fmt: skip

        async def polling() -> bool:
            return bool((await client.workflow_service.describe_task_queue(request)).pollers)

        await wait_until(polling, worker, log, "starting", 60)

        async def backfill_of(start: datetime, end: datetime) -> uuid.UUID:
            async with pool.acquire() as conn, conn.transaction():
                backfill = await backfills.start(rt, conn, export, start, end)

            async def finished() -> bool:
                sql = "SELECT status FROM batch_export_backfills WHERE id = $1"
                return await pool.fetchval(sql, backfill.id) not in ("Starting", "Running")

            await wait_until(finished, worker, log, "exporting", bench.timeout)
            return backfill.id

        # Warm up as a long-running worker is: an empty hour loads the drivers and the S3 client's models.
        await backfill_of(HOUR - timedelta(hours=1), HOUR)
        idle = memory_mb(worker.pid, "VmRSS")

        async def measured() -> tuple[float, float]:
            """Export the hour once (again: a rerun rewrites the same keys); print and return its seconds and the
            worker's CPU seconds."""
            cpu_before, began = cpu_seconds(), time.perf_counter()
            backfill_id = await backfill_of(HOUR, END)
            wall, cpu_after = time.perf_counter() - began, cpu_seconds()
            runs = await pool.fetch("SELECT *, extract(epoch FROM finished_at - created_at)::float AS seconds "
                                    "FROM batch_export_runs WHERE backfill_id = $1", backfill_id)  # fmt: skip
            if len(runs) != 1 or runs[0]["status"] != "Completed" or runs[0]["records_completed"] != events:
                found = [(r["status"], r["records_completed"], r["latest_error"]) for r in runs]
                raise SystemExit(f"{name}: expected one Completed run of {events:,} records, got {found}\n{tail(log)}")
            seconds, attempt = await activity_seconds(client, runs[0]["workflow_id"], runs[0]["workflow_run_id"])
            used = {k: cpu_after.get(k, 0) - cpu_before.get(k, 0)
                    for k in SERVERS if k in cpu_after}  # fmt: skip
            cpu = ", ".join(f"{k} {v:.2f}" for k, v in used.items())
            print(f"{name}: activity {seconds:.2f} s (attempt {attempt}), wall {wall:.2f} s, run row "
                  f"{runs[0]['seconds']:.2f} s; CPU seconds: {cpu}; {measure.load()}", flush=True)  # fmt: skip
            return seconds, used["worker"]

        twice = [await measured(), await measured()]
        seconds, worker_cpu = min(t for t, _ in twice), min(c for _, c in twice)
        peak = memory_mb(worker.pid, "VmHWM")
    finally:
        await asyncio.to_thread(stop, worker)
    records, objects, size = await case.stored()
    if records != events:
        raise SystemExit(f"{name}: the destination holds {records:,} records in {objects} files, not {events:,}")
    print(f"{name}: best {seconds:.2f} s; {objects} file(s), {size / 1e6:.0f} MB; worker RSS idle {idle:.0f} MB, "
          f"peak {peak:.0f} MB; {records:,} records verified, each once after two exports", flush=True)  # fmt: skip
    return seconds, peak, worker_cpu


async def main(args: argparse.Namespace, work: Path) -> None:
    names = [n.strip() for n in args.formats.split(",") if n.strip()]
    if unknown := set(names) - set(FORMATS):
        raise SystemExit(f"unknown formats {sorted(unknown)}; choose from {sorted(FORMATS)}")
    destinations = [d.strip() for d in args.destination.split(",") if d.strip()]
    warehouses = [d for d in destinations if d in WAREHOUSES]  # several at once: in turn, in each round
    if warehouses != destinations and (len(destinations) != 1 or args.destination not in OTHER_DESTINATIONS):
        raise SystemExit(f"unknown destination {args.destination}; choose one of {', '.join(OTHER_DESTINATIONS)}, "
                         f"or one or more of {', '.join(WAREHOUSES)}")  # fmt: skip
    if args.destination not in FILE_DESTINATIONS:
        names = ["table"]  # a table has no file format to choose
    with (
        EmbeddedPostgres(work / "postgres", free_port()).start() as postgres,
        TemporalDevServer(work / "temporal.db", free_port(), ui_port=None).start() as server,
        SeaweedS3(work / "seaweed").start() as seaweed,
        contextlib.ExitStack() as more,
    ):
        azurite = fakesnow = bigquery = None
        if args.destination == "AzureBlob":
            azurite = more.enter_context(Azurite(work / "azurite", free_port()).start())
        posthog, source = None, dict[str, Any]()
        if args.source == "clickhouse":
            posthog = PostHogClickHouse.created(
                more.enter_context(ClickHouseStandIn(work / "clickhouse").start()).account
            )
            source = {"source": "clickhouse", "clickhouse_url": posthog.account.url,
                      "clickhouse_user": posthog.account.user, "clickhouse_database": posthog.database,
                      "clickhouse_password": SecretStr(posthog.account.password)}  # fmt: skip
        if "Snowflake" in warehouses:
            fakesnow = more.enter_context(Fakesnow(work / "fakesnow", free_port()).start())
            os.environ["BATCH_EXPORTS_SNOWFLAKE_URL"] = fakesnow.url  # the workers' setting
        if "BigQuery" in warehouses:
            bigquery = more.enter_context(BigQueryEmulator(work / "bqemulator", free_port()).start())
            os.environ["BATCH_EXPORTS_BIGQUERY_URL"] = bigquery.url  # the workers' setting: no credentials sent
        os.environ["TEMPORAL_ADDRESS"] = server.address
        key = generate_key()
        settings = Settings(database_url=postgres.create_database("batch_exports"), encryption_key=SecretStr(key),
                            settle_delay_seconds=0, jitter_enabled=False, run_max_attempts=1,
                            allow_private_destinations=True, data_dir=work, **source)  # fmt: skip
        db.migrate(settings.database_url)
        session = get_session()
        async with (
            open_runtime(settings, process="benchmark") as rt,
            session.create_client("s3", endpoint_url=seaweed.endpoint_url, region_name="us-east-1",
                                  aws_access_key_id=seaweed.access_key_id,
                                  aws_secret_access_key=seaweed.secret_access_key) as s3,
        ):  # fmt: skip
            await projects.ensure(rt.pool, TEAM, "bench", "phc_bench")
            await (load(rt.pool, args.events) if posthog is None else load_clickhouse(posthog, args.events))
            bench = Bench(rt, key, s3, seaweed, azurite, fakesnow, bigquery, work, args.events, args.timeout)
            rounds: list[tuple[float, list[tuple[Case, tuple[float, float, float]]], str]] = []
            for round_ in range(1, args.rounds + 1):  # floor, then each format, in turn: no minute favours one
                print(f"round {round_} of {args.rounds}", flush=True)
                best, size = await floor(rt.pool, args.events, posthog)
                if warehouses:  # their worker CPU beside S3 Parquet's, in the same round
                    cases = [await bench.case(d, name, round_) for d in ["S3Compatible", *warehouses]
                             for name in (["parquet"] if d == "S3Compatible" else names)]  # fmt: skip
                else:
                    cases = [await bench.case(args.destination, name, round_) for name in names]
                rounds.append((best, [(case, await export_one(bench, case)) for case in cases], measure.load()))
    for round_, (best, results, load_) in enumerate(rounds, 1):
        print(f"\nround {round_}: {args.events:,} events from {args.source}, {size / 1e6:.0f} MB read by the floor, "
              f"floor {best:.2f} s; {load_}")  # fmt: skip
        print(f"{'export':<22}{'seconds':>9}{'rows/s':>11}{'MB/s':>8}{'peak RSS MB':>13}{'worker CPU s':>14}"
              f"{'vs floor':>10}{'target':>8}")  # fmt: skip
        for case, (s, peak, cpu) in results:
            ratio = best / s
            missed = "" if ratio >= case.target else "  MISSED"
            print(f"{case.label:<22}{s:>9.2f}{args.events / s:>11,.0f}{size / 1e6 / s:>8.0f}"
                  f"{peak:>13.0f}{cpu:>14.2f}{ratio:>10.2f}{'>= ' + str(case.target):>8}{missed}")  # fmt: skip
    print(f"\nover {len(rounds)} round(s), median (range): floor {measure.spread([r[0] for r in rounds], ' s')}")
    for i, case in enumerate(case for case, _ in rounds[0][1]):
        ratios = [best / results[i][1][0] for best, results, _ in rounds]
        cpus = [results[i][1][2] for _, results, _ in rounds]
        print(f"{case.label:<22} vs floor {measure.spread(ratios)}, worker CPU {measure.spread(cpus, ' s')}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000, help="events in the hour (4000000 for memory)")
    parser.add_argument("--destination", default="S3Compatible",
                        help="S3Compatible, AzureBlob, Iceberg, DeltaLake, or warehouses: Redshift, Snowflake, "
                        "BigQuery, several comma-separated")  # fmt: skip
    parser.add_argument("--formats", default="parquet,jsonl", help="comma-separated subset of: parquet, jsonl "
                        "(S3Compatible and AzureBlob)")  # fmt: skip
    parser.add_argument("--timeout", type=float, default=3600, help="seconds one format's export may take")
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the floor and each format, in turn")
    parser.add_argument("--source", default="postgres", choices=("postgres", "clickhouse"),
                        help="where the events are: this service's PostgreSQL or PostHog's ClickHouse")  # fmt: skip
    parsed = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping the servers it started
    with scratch_directory("bench-export-", keep=parsed.keep) as work:
        asyncio.run(main(parsed, work))
