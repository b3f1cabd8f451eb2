"""Benchmark: a one-year hourly backfill (8,760 intervals) over about 1M events, on the embedded stack.

    .venv/bin/python bench/backfill.py [--events 1000000] [--concurrency 32] [--destination NoOp|File]

Starts PostgreSQL and the Temporal dev server (persisting to a file, as `make dev` does) in a
temporary directory, loads the events, runs the backfill through the real worker and prints: wall
time, intervals per second, the median run, and the median *empty* run (a second backfill over a
range with no events).
"""

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

from batch_exports.crypto import generate_key
from batch_exports.models import BatchExportIn
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.services import backfills, lifecycle
from batch_exports.settings import Settings
from batch_exports.store import db, projects
from batch_exports.store.exports import BatchExport
from entrypoints.embedded import EmbeddedPostgres, TemporalDevServer, free_port
from tests.support.scratch import scratch_directory
from worker import build_worker

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2026, 1, 1, tzinfo=UTC)

LOAD_EVENTS = """
    INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
    SELECT gen_random_uuid(), $1, '$pageview', 'user-' || (i % 5000),
           jsonb_build_object('$current_url', 'https://example.com/' || (i % 997), 'n', i),
           $2::timestamptz + i * $4::interval, $2::timestamptz + i * $4::interval, $2::timestamptz + i * $4::interval
    FROM generate_series(0, $3 - 1) AS i
"""


async def wait_done(pool, backfill_id: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    while True:
        status = await pool.fetchval("SELECT status FROM batch_export_backfills WHERE id = $1", backfill_id)
        if status not in ("Starting", "Running"):
            if status != "Completed":
                raise SystemExit(f"backfill ended {status}")
            return
        await asyncio.sleep(0.5)


async def run_backfill(rt: Runtime, export: BatchExport, start: datetime, end: datetime) -> tuple[float, list[float]]:
    pool = rt.pool
    began = time.perf_counter()
    async with pool.acquire() as conn, conn.transaction():
        backfill = await backfills.start(rt, conn, export, start, end)
    await wait_done(pool, backfill.id)
    wall = time.perf_counter() - began
    rows = await pool.fetch(
        "SELECT extract(epoch FROM finished_at - created_at) AS seconds FROM batch_export_runs WHERE backfill_id = $1",
        backfill.id,
    )
    return wall, [float(r["seconds"]) for r in rows]


async def main(args: argparse.Namespace, work: Path) -> None:
    with (
        EmbeddedPostgres(work / "postgres", free_port()).start() as postgres,
        TemporalDevServer(work / "temporal.db", free_port(), ui_port=None).start() as server,
    ):
        os.environ["TEMPORAL_ADDRESS"] = server.address
        settings = Settings(
            database_url=postgres.create_database("batch_exports"),
            encryption_key=SecretStr(generate_key()),
            settle_delay_seconds=0,
            jitter_enabled=False,
            backfill_concurrency=args.concurrency,
            file_destination_root=work / "exports",
            data_dir=work,
        )
        db.migrate(settings.database_url)
        async with open_runtime(settings, process="benchmark") as rt:
            pool = rt.pool
            await projects.ensure(pool, 1, "bench", "phc_bench")
            step = (YEAR_END - YEAR_START) / args.events
            began = time.perf_counter()
            await pool.execute(LOAD_EVENTS, 1, YEAR_START, args.events, step)
            await pool.execute("ANALYZE events")
            print(f"loaded {args.events:,} events in {time.perf_counter() - began:.1f}s", flush=True)
            config = {"path": "bench"} if args.destination == "File" else {}
            body = BatchExportIn.model_validate(
                {"name": "bench", "interval": "hour", "paused": True,
                 "destination": {"type": args.destination, "config": config}}
            )  # fmt: skip
            export = await lifecycle.create(rt, 1, body)
            async with build_worker(rt):
                wall, durations = await run_backfill(rt, export, YEAR_START, YEAR_END)
                intervals = len(durations)
                exported = await pool.fetchval(
                    "SELECT sum(records_completed) FROM batch_export_runs WHERE batch_export_id = $1", export.id
                )
                empty_start = YEAR_START - timedelta(hours=args.empty_intervals)
                empty_wall, empty = await run_backfill(rt, export, empty_start, YEAR_START)
    print(f"destination:              {args.destination}, backfill concurrency {args.concurrency}")
    print(f"intervals:                {intervals:,} ({exported:,} records exported)")
    print(f"wall time:                {wall:.1f} s  (target: under 300 s)")
    print(f"intervals per second:     {intervals / wall:.1f}")
    print(f"median run:               {statistics.median(durations) * 1000:.0f} ms")
    print(f"median empty run:         {statistics.median(empty) * 1000:.0f} ms "
          f"({len(empty)} empty intervals in {empty_wall:.1f} s)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--destination", choices=["NoOp", "File"], default="File")
    parser.add_argument("--empty-intervals", type=int, default=500)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping the servers it started
    with scratch_directory("bench-backfill-") as work:
        asyncio.run(main(parser.parse_args(), work))
