"""Benchmark: one project's dead destinations against another project's healthy export (issue 20, finding 6).

    .venv/bin/python -m bench.fairness [--dead 100] [--intervals 3] [--per-project-cap 10]

Starts PostgreSQL and the Temporal dev server (task-queue fairness on, as `make dev` runs it) and one worker
process (`python worker.py`) with the service's defaults: 100 activity slots, at most 10 export attempts of a
project at once, a 30 s settle delay, 10 export attempts a run. Project 1 has one healthy `File` export; project 2
has `--dead` `HTTP` exports to a loopback receiver that accepts connections and never answers (each attempt
waits 5 x 60 s on it), all `every 5 minutes`, without jitter. The healthy export runs alone for one interval,
then with the dead ones for `--intervals` more, their retries piling up as they did in the issue (where project
1's run finished up to 680 s after its interval's end). It prints, for each interval, when the healthy run
finished after the interval's end (the bound: 60 s; 30 s of it is the settle delay), how many dead attempts held
a worker slot, and the load average. `--per-project-cap 1000` shows the service without the cap.
"""

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from batch_exports.exports.validation import BatchExportIn
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.services import lifecycle
from batch_exports.settings import Settings
from batch_exports.store import projects
from bench.embedded import embedded_stack
from contracts.intervals import Interval, IntervalSpec, latest_boundary
from entrypoints.embedded import LOOPBACK, free_port
from tests.support.scratch import scratch_directory

ROOT = Path(__file__).resolve().parents[1]
EVERY = timedelta(minutes=5)
BOUND = timedelta(seconds=60)
HEALTHY, DEAD = 1, 2


class Receiver:
    """A loopback port that accepts connections and never answers; counts the ones open now."""

    def __init__(self) -> None:
        self.port = free_port()
        self.open = 0
        self.most = 0
        self._writers: list[asyncio.StreamWriter] = []

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most = max(self.most, self.open)
        self._writers.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass
        self.open -= 1

    @contextlib.asynccontextmanager
    async def serving(self) -> AsyncIterator["Receiver"]:
        server = await asyncio.start_server(self._accept, LOOPBACK, self.port)
        try:
            yield self
        finally:
            server.close()
            for writer in self._writers:
                writer.close()


@contextlib.contextmanager
def worker_process(settings: Settings, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`python worker.py` with the settings' database, queue and file root, and the defaults for everything else."""
    assert settings.encryption_key is not None
    env = {
        **os.environ,
        "BATCH_EXPORTS_DATABASE_URL": settings.database_url,
        "BATCH_EXPORTS_ENCRYPTION_KEY": settings.encryption_key.get_secret_value(),
        "BATCH_EXPORTS_TASK_QUEUE": settings.task_queue,
        "BATCH_EXPORTS_FILE_DESTINATION_ROOT": str(settings.exports_root),
        "BATCH_EXPORTS_JITTER_ENABLED": "false",
        "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS": "true",
        "BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT": str(settings.max_concurrent_exports_per_project),
        "BATCH_EXPORTS_WORKER_METRICS_PORT": "0",
        "BATCH_EXPORTS_LOG_LEVEL": "WARNING",
    }
    with log.open("ab") as out:
        process = subprocess.Popen([sys.executable, "worker.py"], env=env, cwd=ROOT, stdout=out, stderr=out)
    try:
        yield process
    finally:
        process.terminate()
        process.wait(60)


async def create(rt: Runtime, team_id: int, name: str, destination: Mapping[str, object]) -> str:
    body = BatchExportIn.model_validate({"name": name, "interval": "every 5 minutes", "destination": destination})
    export = await lifecycle.create(rt, team_id, body)
    return str(export.id)


async def finished_after(pool: asyncpg.Pool, export_id: str, end: datetime, within: timedelta) -> timedelta | None:
    """How long after `end` the export's run of the interval ending there completed; None if not within."""
    deadline = end + within
    while datetime.now(UTC) < deadline:
        finished = await pool.fetchval(
            "SELECT finished_at FROM batch_export_runs WHERE batch_export_id = $1 AND data_interval_end = $2 "
            "AND status = 'Completed'",
            uuid.UUID(export_id),
            end,
        )
        if finished is not None:
            return finished - end  # type: ignore[no-any-return]
        await asyncio.sleep(0.5)
    return None


async def sleep_until(moment: datetime) -> None:
    await asyncio.sleep(max(0.0, (moment - datetime.now(UTC)).total_seconds()))


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


async def main(args: argparse.Namespace, work: Path) -> None:
    receiver = Receiver()
    with embedded_stack(
        work,
        jitter_enabled=False,
        allow_private_destinations=True,
        max_concurrent_exports_per_project=args.per_project_cap,
        max_exports_per_project=max(100, args.dead),
    ) as stack:
        settings = stack.settings
        async with open_runtime(settings, process="benchmark") as rt, receiver.serving():
            await projects.ensure(rt.pool, HEALTHY, "healthy", "phc_healthy")
            await projects.ensure(rt.pool, DEAD, "dead", "phc_dead")
            with worker_process(settings, work / "worker.log"):
                spec = IntervalSpec(Interval.EVERY_5_MINUTES)
                calm = latest_boundary(spec, datetime.now(UTC)) + EVERY
                if calm - datetime.now(UTC) < timedelta(seconds=20):  # too close to set up before it
                    calm += EVERY
                healthy = await create(rt, HEALTHY, "healthy", {"type": "File", "config": {"path": "healthy"}})
                ends = [calm + EVERY * n for n in range(args.intervals + 1)]
                events = [
                    (uuid.uuid4(), HEALTHY, f"user-{n}", end - timedelta(minutes=2)) for n, end in enumerate(ends)
                ]
                events += [(uuid.uuid4(), DEAD, f"user-{n}", end - timedelta(minutes=2)) for n, end in enumerate(ends)]
                await rt.pool.executemany(
                    "INSERT INTO events (uuid, team_id, event, distinct_id, timestamp, created_at, inserted_at) "
                    "VALUES ($1, $2, 'bench', $3, $4, $4, $4)",
                    events,
                )
                print(f"dead exports: {args.dead} in project {DEAD}, per-project cap {args.per_project_cap}, "
                      f"first interval (healthy alone) ends {calm:%H:%M:%S}", flush=True)  # fmt: skip
                figures: list[tuple[datetime, timedelta | None, int, str]] = []
                for n, end in enumerate(ends):
                    if n == 1:  # right after the calm interval: the dead exports join
                        began = time.monotonic()
                        url = f"http://{LOOPBACK}:{receiver.port}/batch/"
                        dead = {"type": "HTTP", "config": {"url": url, "token": "t"}}
                        for i in range(args.dead):
                            await create(rt, DEAD, f"dead-{i}", dead)
                        print(f"created {args.dead} dead exports in {time.monotonic() - began:.1f} s", flush=True)
                    await sleep_until(end)
                    receiver.most = receiver.open
                    took = await finished_after(rt.pool, healthy, end, BOUND + timedelta(minutes=4))
                    figures.append((end, took, receiver.most, load()))
                    said = f"{took.total_seconds():.1f} s" if took is not None else "not within 5 min"
                    print(f"interval ending {end:%H:%M:%S} ({'calm' if n == 0 else 'with the dead exports'}): "
                          f"healthy run done {said} after its end; dead attempts holding a slot at most "
                          f"{receiver.most}; load average {figures[-1][3]}", flush=True)  # fmt: skip
                running = await rt.pool.fetchval(
                    "SELECT count(*) FROM batch_export_runs r JOIN batch_exports e ON e.id = r.batch_export_id "
                    "WHERE e.team_id = $1 AND r.status IN ('Starting', 'Running')",
                    DEAD,
                )
    attacked = [took for _, took, _, _ in figures[1:]]
    worst = max((t for t in attacked if t is not None), default=None)
    print(f"dead project: {running} runs open at the end (waiting or exporting)")
    if None in attacked or worst is None:
        print(f"healthy run: missed the {BOUND.total_seconds():.0f} s bound (not done within 5 min)")
    else:
        verdict = "within" if worst <= BOUND else "OVER"
        print(
            f"healthy run, worst of {len(attacked)} intervals with {args.dead} dead exports: "
            f"{worst.total_seconds():.1f} s after its interval's end ({verdict} the bound, {BOUND.seconds} s)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dead", type=int, default=100, help="dead HTTP exports in the other project")
    parser.add_argument("--intervals", type=int, default=3, help="intervals measured with the dead exports")
    parser.add_argument(
        "--per-project-cap", type=int, default=10, help="BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT"
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind, stopping the servers it started
    arguments = parser.parse_args()
    with scratch_directory("bench-fairness-") as work:
        asyncio.run(main(arguments, work))
