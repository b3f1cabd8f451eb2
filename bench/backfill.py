"""Benchmark: a one-year hourly backfill (8,760 intervals) over about 1M events, on the embedded stack,
against Temporal's own floor measured in the same run on the same server.

    .venv/bin/python -m bench.backfill [--events 1000000] [--concurrency 32] [--destination NoOp|File] [--workers 1]

Starts PostgreSQL and the Temporal dev server (persisting to a file, as `make dev` does) in a
temporary directory, loads the events and starts `--workers` worker processes (`bench.workers`). Then the
floor: as many bare workflows as the backfill has intervals, each with one no-op activity, started as
children at the same concurrency (`bench.floor`), and the backfill through the real workers, alternately in
halves (floor, backfill, backfill, floor: the first half of the intervals, then the second), so a noisy minute
cannot favour either. It prints both in intervals per second and their ratio, per phase the CPU each process
spent per interval and the load average, the median run, and the median *empty* run (a second backfill over a
range with no events).
"""

import argparse
import asyncio
import contextlib
import dataclasses
import os
import signal
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

from batch_exports.exports.export import BatchExport
from batch_exports.exports.validation import BatchExportIn
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.services import backfills, lifecycle
from batch_exports.settings import Settings
from batch_exports.store import projects
from bench import latencies, measure
from bench.embedded import embedded_stack
from bench.floor import FLOOR_WORKFLOW, FloorInputs
from bench.workers import floor_queue
from entrypoints.embedded import free_port
from tests.support.scratch import scratch_directory

ROOT = Path(__file__).resolve().parents[1]

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


@contextlib.contextmanager
def worker_processes(settings: Settings, count: int) -> Iterator[tuple[list[str], list[int]]]:
    """`count` worker processes (`bench.workers`) on the settings' database and task queue, until the block ends;
    yields the URLs of their metrics endpoints and their pids."""
    assert settings.encryption_key is not None
    env = {
        **os.environ,
        "BATCH_EXPORTS_DATABASE_URL": settings.database_url,
        "BATCH_EXPORTS_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "BATCH_EXPORTS_TASK_QUEUE": settings.task_queue,
        "BATCH_EXPORTS_SETTLE_DELAY_SECONDS": "0",
        "BATCH_EXPORTS_FILE_DESTINATION_ROOT": str(settings.exports_root),
        "BATCH_EXPORTS_RECONCILE_EVERY_SECONDS": "3600",
        "BATCH_EXPORTS_LOG_LEVEL": "WARNING",  # not two lines per run
    }
    ports = [free_port() for _ in range(count)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-m", "bench.workers"],
            env={**env, "BATCH_EXPORTS_WORKER_METRICS_PORT": str(port)},
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for port in ports
    ]
    try:
        for process in workers:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield [f"http://127.0.0.1:{port}/metrics" for port in ports], [process.pid for process in workers]
    finally:
        for process in workers:
            process.terminate()
        for process in workers:
            process.wait(60)


async def run_floor(rt: Runtime, count: int, concurrency: int, dressed: bool = False) -> float:
    """Seconds Temporal takes for `count` bare workflows with one no-op activity each, `concurrency` at a time
    (`dressed`: with the Temporal features a run has, see `bench.floor`)."""
    began = time.perf_counter()
    await rt.client.execute_workflow(
        FLOOR_WORKFLOW,
        FloorInputs(prefix=f"floor-{uuid.uuid4().hex[:8]}", count=count, concurrency=concurrency, dressed=dressed),
        id=f"floor-{uuid.uuid4()}",
        task_queue=floor_queue(rt.settings.task_queue),
    )
    return time.perf_counter() - began


@dataclasses.dataclass
class Phase:
    kind: str
    """floor or backfill"""
    intervals: int
    wall: float
    cpu: dict[str, float]
    """CPU seconds of each group of processes over the phase."""
    load: str
    latencies: list[str]

    def line(self) -> str:
        per = ", ".join(f"{name} {seconds / self.intervals * 1000:.1f} ms" for name, seconds in self.cpu.items())
        return (
            f"  {self.kind:<8} {self.intervals:>6,} intervals in {self.wall:7.1f} s "
            f"({self.intervals / self.wall:5.1f}/s); CPU per interval: {per}; {self.load}"
        )


async def main(args: argparse.Namespace, work: Path) -> None:
    with embedded_stack(
        work, settle_delay_seconds=0, jitter_enabled=False, backfill_concurrency=args.concurrency
    ) as stack:
        settings, postgres, server = stack.settings, stack.postgres, stack.server
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
            hours = args.intervals or int((YEAR_END - YEAR_START) / timedelta(hours=1))
            with worker_processes(settings, args.workers) as (metrics, worker_pids):
                assert postgres.process is not None and server.process is not None
                pids = {"Temporal server": [server.process.pid], "workers": worker_pids,
                        "PostgreSQL": [postgres.process.pid]}  # fmt: skip
                phases: list[Phase] = []
                durations: list[float] = []
                first = hours // 2
                halves = [(YEAR_START, first), (YEAR_START + timedelta(hours=first), hours - first)]
                order = [("floor", halves[0]), ("backfill", halves[0]), ("backfill", halves[1]), ("floor", halves[1])]
                for kind, (start, count) in order:
                    scraped, cpu = latencies.scrape(metrics), latencies.cpu_seconds(pids)
                    if kind == "floor":
                        wall = await run_floor(rt, count, args.concurrency)
                    else:
                        wall, runs = await run_backfill(rt, export, start, start + timedelta(hours=count))
                        durations += runs
                    after = latencies.cpu_seconds(pids)
                    phase = Phase(kind, count, wall, {name: after[name] - cpu[name] for name in after},
                                  measure.load(), latencies.report(scraped, latencies.scrape(metrics)))  # fmt: skip
                    phases.append(phase)
                    print(phase.line(), flush=True)
                if args.dressed_floor:
                    before_dressed, cpu_before_dressed = latencies.scrape(metrics), latencies.cpu_seconds(pids)
                    dressed_wall = await run_floor(rt, hours, args.concurrency, dressed=True)
                    after_dressed, cpu_after_dressed = latencies.scrape(metrics), latencies.cpu_seconds(pids)
                exported = await pool.fetchval(
                    "SELECT sum(records_completed) FROM batch_export_runs WHERE batch_export_id = $1", export.id
                )
                empty_start = YEAR_START - timedelta(hours=args.empty_intervals)
                empty_wall, empty = await run_backfill(rt, export, empty_start, YEAR_START)
    floors = [p for p in phases if p.kind == "floor"]
    backfills_ = [p for p in phases if p.kind == "backfill"]
    floor_wall, wall = sum(p.wall for p in floors), sum(p.wall for p in backfills_)
    intervals = len(durations)
    print(f"destination:              {args.destination}, concurrency {args.concurrency}, {args.workers} worker(s)")
    print(f"intervals:                {intervals:,} ({int(exported):,} records exported)")
    print(f"wall time:                {wall:.1f} s  (target: under 300 s for the year)")
    print(f"intervals per second:     {intervals / wall:.1f}")
    print(f"floor:                    {floor_wall:.1f} s, {hours / floor_wall:.1f} intervals per second "
          f"({hours:,} bare workflows with one no-op activity each)")  # fmt: skip
    print(f"ratio to the floor:       {floor_wall / wall:.2f}, by half "
          f"{', '.join(f'{f.wall / b.wall:.2f}' for f, b in zip(floors, backfills_, strict=True))}"
          "  (target: at least 0.8)")  # fmt: skip
    print("CPU per interval, median of the two halves (their range):")
    for name in phases[0].cpu:
        spent = {kind: [p.cpu[name] / p.intervals * 1000 for p in phases if p.kind == kind]
                 for kind in ("floor", "backfill")}  # fmt: skip
        print(f"  {name + ':':<17} floor {measure.spread(spent['floor'], ' ms', 1)}, "
              f"backfill {measure.spread(spent['backfill'], ' ms', 1)}")  # fmt: skip
    print(f"median run:               {statistics.median(durations) * 1000:.0f} ms")
    print(f"median empty run:         {statistics.median(empty) * 1000:.0f} ms "
          f"({len(empty)} empty intervals in {empty_wall:.1f} s)")  # fmt: skip
    for phase in phases:
        print(f"where the {phase.kind}'s time went, {phase.intervals:,} intervals (the workers' Temporal SDK metrics):")
        print("\n".join(phase.latencies))
    if args.dressed_floor:
        print(
            f"dressed floor:            {dressed_wall:.1f} s, {hours / dressed_wall:.1f} intervals per second "
            f"(the run's Temporal features, none of its code); backfill / dressed floor {dressed_wall / wall:.2f}"
        )
        print("\n".join(latencies.report(before_dressed, after_dressed)))
        print(latencies.cpu_report(cpu_before_dressed, cpu_after_dressed, dressed_wall))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--destination", choices=["NoOp", "File"], default="File")
    parser.add_argument("--empty-intervals", type=int, default=500)
    parser.add_argument("--workers", type=int, default=1, help="worker processes")
    parser.add_argument("--intervals", type=int, default=0, help="the first N hours of the year only (profiling)")
    parser.add_argument("--dressed-floor", action="store_true", help="also a floor with the run's Temporal features")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping the servers it started
    arguments = parser.parse_args()  # before the scratch directory: `--help` leaves nothing behind
    with scratch_directory("bench-backfill-") as work:
        asyncio.run(main(arguments, work))
