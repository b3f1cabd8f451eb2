"""Benchmark: list runs (pages of 100) of an export with 100,000 runs, at steady request rates.

    .venv/bin/python -m bench.api [--runs 100000] [--rates 100,200,300,400,500,600] [--seconds 20] [--repeats 1]

Starts PostgreSQL, loads the runs, starts the gateway (`python -m api`) as its own process, walks every
page once to collect cursors, then sends requests on a fixed schedule (open loop, so a slow answer
cannot slow the sender down) from this second process, spread over the first page, the middle and the
last pages. Each rate is one step; `--repeats` runs the steps again, in turn (100, 200, ..., 100, 200, ...),
so a noisy minute cannot favour one rate. Per step it prints the rate served, p50/p99 latency, the CPU the
gateway and PostgreSQL spent per request and the load average; then per rate the spread over the repeats,
and the saturation point: the highest rate served (at least 95% of the rate asked) with p99 under 100 ms.

The sender is a measuring instrument: during a step its garbage collector is off (`measure.collector_paused`),
since one full collection of this process, which has loaded the service's modules, stopped its loop for 0.1 to
1.4 s and was charged to every request in flight; each step prints how late the sender sent (p99) and the CPU it
spent per request, so a starved sender shows.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from batch_exports.crypto import ConfigCipher, generate_key
from batch_exports.exports.validation import BatchExportIn
from batch_exports.store import api_keys, db, exports, projects
from bench import measure
from bench.latencies import cpu_seconds
from entrypoints.embedded import LOOPBACK, EmbeddedPostgres, free_port
from tests.support.scratch import scratch_directory

KEY = "phx_bench_key_000000000000"
SATURATED_P99 = 0.100
"""A rate is served while p99 stays under this (and at least `SERVED` of the rate asked is answered)."""
SERVED = 0.95

LOAD_RUNS = """
    INSERT INTO batch_export_runs (id, batch_export_id, workflow_id, workflow_run_id, status, records_completed,
                                   data_interval_start, data_interval_end, created_at, finished_at, last_updated_at)
    SELECT gen_random_uuid(), $1::uuid, $1::uuid::text || '-' || i, gen_random_uuid()::text, 'Completed', i % 1000,
           t, t + interval '1 hour', t + interval '1 hour', t + interval '1 hour', now()
    FROM generate_series(0, $2 - 1) AS i, LATERAL (SELECT timestamptz '2015-01-01' + i * interval '1 hour' AS t) AS at
"""


async def prepare(dsn: str, runs: int, cipher: ConfigCipher) -> str:
    await asyncio.to_thread(db.migrate, dsn)
    pool = await db.create_pool(dsn)
    try:
        await projects.ensure(pool, 1, "bench", "phc_bench")
        await api_keys.ensure(pool, KEY, label="bench")
        body = BatchExportIn.model_validate({"name": "bench", "interval": "hour", "destination": {"type": "NoOp"}})
        async with pool.acquire() as conn:
            export = await exports.insert(conn, 1, body, cipher)
        began = time.perf_counter()
        await pool.execute(LOAD_RUNS, export.id, runs)
        await pool.execute("ANALYZE batch_export_runs")
        print(f"loaded {runs:,} runs in {time.perf_counter() - began:.1f}s", flush=True)
        return str(export.id)
    finally:
        await pool.close()


STARTUP_SECONDS = 120
"""How long the gateway may take to answer after it starts: importing every connector takes a while on a busy
machine (more than 10 s at load 6)."""


async def wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(STARTUP_SECONDS * 10):
        try:
            async with http.get(f"{base}/api/schema/") as response:
                if response.status == 200:
                    return
        except aiohttp.ClientError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit("the gateway did not start")


async def collect_pages(http: aiohttp.ClientSession, first: str) -> list[str]:
    urls, url = [first], first
    while True:
        async with http.get(url) as response:
            body = await response.json()
        if not body["next"]:
            return urls
        url = body["next"]
        urls.append(url)


async def load(http: aiohttp.ClientSession, targets: dict[str, list[str]], rate: float, seconds: float) -> dict:
    latencies: dict[str, list[float]] = {part: [] for part in targets}
    late: list[float] = []  # how long after its time on the schedule each request was sent
    errors = 0
    parts = list(targets)
    total = int(rate * seconds)

    async def one(part: str, url: str, due: float) -> None:
        nonlocal errors
        began = time.perf_counter()
        late.append(began - due)
        async with http.get(url) as response:
            await response.read()
            if response.status != 200:
                errors += 1
        latencies[part].append(time.perf_counter() - began)

    tasks = []
    with measure.collector_paused():  # its first collection comes before the schedule starts, not on it
        started, cpu = time.perf_counter(), time.process_time()
        for i in range(total):
            due = started + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            part = parts[i % len(parts)]
            tasks.append(asyncio.create_task(one(part, targets[part][i % len(targets[part])], due)))
        await asyncio.gather(*tasks)
    return {"latencies": latencies, "errors": errors, "wall": time.perf_counter() - started, "total": total,
            "late": late, "sender_cpu": time.process_time() - cpu}  # fmt: skip


def ms(values: list[float], q: float) -> str:
    return f"{quantile(values, q) * 1000:.1f} ms"


def quantile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


@dataclass
class Step:
    asked: float
    served: float
    p50: float
    p99: float
    errors: int
    gateway_ms: float
    postgres_ms: float
    sender_ms: float
    sender_late_p99: float
    load: str

    def line(self) -> str:
        return (
            f"{self.asked:>5.0f}/s asked: {self.served:>4.0f}/s served, p50 {self.p50 * 1000:7.1f} ms, "
            f"p99 {self.p99 * 1000:7.1f} ms, {self.errors} errors; CPU per request: gateway "
            f"{self.gateway_ms:.2f} ms, PostgreSQL {self.postgres_ms:.2f} ms, sender {self.sender_ms:.2f} ms "
            f"(sent late p99 {self.sender_late_p99 * 1000:.1f} ms); {self.load}"
        )


async def step(http: aiohttp.ClientSession, targets: dict[str, list[str]], rate: float, seconds: float,
               pids: dict[str, list[int]]) -> tuple[Step, dict]:  # fmt: skip
    before = cpu_seconds(pids)
    result = await load(http, targets, rate, seconds)
    after = cpu_seconds(pids)
    every = [v for values in result["latencies"].values() for v in values]
    total = result["total"]
    return Step(
        asked=rate,
        served=total / result["wall"],
        p50=quantile(every, 50),
        p99=quantile(every, 99),
        errors=result["errors"],
        gateway_ms=(after["gateway"] - before["gateway"]) / total * 1000,
        postgres_ms=(after["PostgreSQL"] - before["PostgreSQL"]) / total * 1000,
        sender_ms=result["sender_cpu"] / total * 1000,
        sender_late_p99=quantile(result["late"], 99),
        load=measure.load(),
    ), result


def saturation_point(steps: list[Step]) -> float | None:
    return measure.saturation(
        [(s.asked, s.served, s.p99) for s in steps if s.served >= SERVED * s.asked and not s.errors], SATURATED_P99
    )


async def main(args: argparse.Namespace, work: Path) -> None:
    rates: list[float] = args.rates
    steps: list[Step] = []
    with EmbeddedPostgres(work / "postgres", free_port()).start() as postgres:
        dsn = postgres.create_database("batch_exports")
        key = generate_key()
        export_id = await prepare(dsn, args.runs, ConfigCipher(key))
        port = free_port()
        env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": dsn, "BATCH_EXPORTS_ENCRYPTION_KEY": key,
               "BATCH_EXPORTS_API_PORT": str(port), "TEMPORAL_ADDRESS": f"{LOOPBACK}:{free_port()}"}  # fmt: skip
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://{LOOPBACK}:{port}"
        assert postgres.process is not None
        pids = {"gateway": [gateway.pid], "PostgreSQL": [postgres.process.pid]}
        try:
            headers = {"Authorization": f"Bearer {KEY}"}
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
                await wait_healthy(http, base)
                pages = await collect_pages(http, f"{base}/api/environments/1/batch_exports/{export_id}/runs/")
                print(f"{len(pages):,} pages of 100 runs; gateway pid {gateway.pid} (for py-spy)", flush=True)
                middle = len(pages) // 2
                targets = {
                    "first page": pages[:1],
                    "middle pages": pages[middle : middle + 50],
                    "last pages": pages[-50:],
                }
                await load(http, targets, min(rates), min(args.seconds, 3))  # warm up: connections, plans
                for _ in range(args.repeats):
                    for rate in rates:
                        done, result = await step(http, targets, rate, args.seconds, pids)
                        steps.append(done)
                        print(done.line(), flush=True)
                        parts = ", ".join(
                            f"{part} p50 {ms(values, 50)} p99 {ms(values, 99)}"
                            for part, values in result["latencies"].items()
                        )
                        print(f"         {parts}", flush=True)
        finally:
            gateway.terminate()
            await gateway.wait()
    print(f"\n{args.seconds:.0f} s per step, {args.repeats} repeat(s); spread over the repeats (median, range):")
    for rate in rates:
        mine = [s for s in steps if s.asked == rate]
        print(f"{rate:>5.0f}/s: served {measure.spread([s.served for s in mine], '/s', 0)}, "
              f"p50 {measure.spread([s.p50 * 1000 for s in mine], ' ms', 1)}, "
              f"p99 {measure.spread([s.p99 * 1000 for s in mine], ' ms', 1)}, "
              f"gateway CPU {measure.spread([s.gateway_ms for s in mine], ' ms', 2)}/request, "
              f"PostgreSQL CPU {measure.spread([s.postgres_ms for s in mine], ' ms', 2)}/request")  # fmt: skip
    point = saturation_point(steps)
    served = f"{point:.0f} requests/s" if point else "no rate"
    print(f"saturation point: {served} served with p99 under {SATURATED_P99 * 1000:.0f} ms "
          f"(target: at least 500; p99 under 25 ms at 200/s); {measure.load()}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument(
        "--rates", type=measure.rates, default="200", help="comma-separated request rates, one step each"
    )
    parser.add_argument("--repeats", type=int, default=1, help="run the steps this many times, in turn")
    parser.add_argument("--seconds", type=float, default=20)
    arguments = parser.parse_args()  # before the scratch directory: `--help` leaves nothing behind
    with scratch_directory("bench-api-") as work:
        asyncio.run(main(arguments, work))
