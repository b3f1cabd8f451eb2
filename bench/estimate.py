"""Benchmark: how long a backfill's dry run takes (`POST backfills/?dry_run=true`) for a year of hourly intervals.

    .venv/bin/python -m bench.estimate [--events 10000000] [--repeat 5]

Starts PostgreSQL in a temporary directory, loads `--events` events spread evenly over a year (in SQL, with
`generate_series`, a million per statement), and an hourly export. Then, `--repeat` times, what the request
does: resolve `start_at: null` to the first interval holding data (one query) and estimate the year (one
grouped count, the export's recent runs, a sample of records). It prints each latency, their median and the
load average around them (the target is under 2 s). Temporal is not needed: the dry run starts nothing.
"""

import argparse
import asyncio
import os
import signal
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from batch_exports.crypto import generate_key
from batch_exports.exports.validation import BatchExportIn
from batch_exports.runtime import open_runtime
from batch_exports.services import backfills, estimates
from batch_exports.settings import Settings
from batch_exports.store import db, exports, projects
from entrypoints.embedded import EmbeddedPostgres, free_port
from tests.support.scratch import scratch_directory

YEAR_START = datetime(2025, 1, 1, tzinfo=UTC)
YEAR_END = datetime(2026, 1, 1, tzinfo=UTC)
CHUNK = 1_000_000

LOAD_EVENTS = """
    INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
    SELECT ('00000000-0000-4000-8000-' || lpad(to_hex(i), 12, '0'))::uuid, $1, '$pageview', 'user-' || (i % 5000),
           jsonb_build_object('$current_url', 'https://example.com/' || (i % 997), 'n', i),
           $2::timestamptz + i * $4::interval, $2::timestamptz + i * $4::interval, $2::timestamptz + i * $4::interval
    FROM generate_series($3::bigint, $5::bigint - 1) AS i
"""
"""Events in ingestion order with increasing uuids, so the indexes grow at their ends (a load of minutes)."""


def load_average() -> str:
    return "/".join(f"{v:.2f}" for v in os.getloadavg())


async def main(args: argparse.Namespace, work: Path) -> None:
    with EmbeddedPostgres(work / "postgres", free_port()).start() as postgres:
        settings = Settings(
            database_url=postgres.create_database("batch_exports"),
            encryption_key=SecretStr(generate_key()),
            data_dir=work,
        )
        db.migrate(settings.database_url)
        async with open_runtime(settings, process="benchmark", lazy=True) as rt:
            pool = rt.pool
            await projects.ensure(pool, 1, "bench", "phc_bench")
            step = (YEAR_END - YEAR_START) / args.events
            began = time.perf_counter()
            for first in range(0, args.events, CHUNK):
                await pool.execute(LOAD_EVENTS, 1, YEAR_START, first, step, min(first + CHUNK, args.events))
                print(f"  {min(first + CHUNK, args.events):,} events ({time.perf_counter() - began:.0f} s)", flush=True)
            await pool.execute("VACUUM ANALYZE events")
            print(f"loaded {args.events:,} events in {time.perf_counter() - began:.1f} s", flush=True)
            body = BatchExportIn.model_validate(
                {"name": "bench", "interval": "hour", "paused": True, "destination": {"type": "NoOp"}}
            )
            async with pool.acquire() as conn:
                export = await exports.insert(conn, 1, body, rt.cipher)
            now = datetime.now(UTC)
            latencies = []
            print(f"load average before: {load_average()}")
            for _ in range(args.repeat):
                began = time.perf_counter()
                bounds = await backfills.resolve(rt, export, {"start_at": None, "end_at": YEAR_END.isoformat()}, now)
                found = await estimates.estimate(rt, export, bounds.start_at, bounds.end_at)
                latencies.append(time.perf_counter() - began)
                print(f"  dry run: {latencies[-1] * 1000:.0f} ms", flush=True)
            print(f"load average after:  {load_average()}")
    print(f"events:               {args.events:,} over {YEAR_START:%Y}, hourly export")
    print(f"answer:               start_at {found.start_at:%Y-%m-%d %H:%M}, {found.intervals:,} intervals, "
          f"{found.intervals_with_data:,} with data, {found.records:,} records, {len(found.days)} days, "
          f"{found.bytes / 2**20:,.0f} MiB")  # fmt: skip
    print(f"dry run latency:      median {statistics.median(latencies) * 1000:.0f} ms, "
          f"max {max(latencies) * 1000:.0f} ms over {len(latencies)}  (target: under 2000 ms)")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping the server it started
    arguments = parser.parse_args()
    with scratch_directory("bench-estimate-") as work:
        asyncio.run(main(arguments, work))
