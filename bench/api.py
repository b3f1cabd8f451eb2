"""Benchmark: list runs (pages of 100) of an export with 100,000 runs, at a steady request rate.

    .venv/bin/python -m bench.api [--runs 100000] [--rate 200] [--seconds 20]

Starts PostgreSQL, loads the runs, starts the gateway (`python -m api`) as its own process, walks every
page once to collect cursors, then sends requests on a fixed schedule (open loop, so a slow answer
cannot slow the sender down) from this second process, spread over the first page, the middle and the
last pages, and prints p50/p99 latency and throughput, overall and per part.
"""

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

from batch_exports.crypto import ConfigCipher, generate_key
from batch_exports.models import BatchExportIn
from batch_exports.store import api_keys, db, exports, projects
from entrypoints.embedded import LOOPBACK, EmbeddedPostgres, free_port
from tests.support.scratch import scratch_directory

KEY = "phx_bench_key_000000000000"

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


async def wait_healthy(http: aiohttp.ClientSession, base: str) -> None:
    for _ in range(100):
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
    errors = 0
    parts = list(targets)
    total = int(rate * seconds)

    async def one(part: str, url: str) -> None:
        nonlocal errors
        began = time.perf_counter()
        async with http.get(url) as response:
            await response.read()
            if response.status != 200:
                errors += 1
        latencies[part].append(time.perf_counter() - began)

    started = time.perf_counter()
    tasks = []
    for i in range(total):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        part = parts[i % len(parts)]
        tasks.append(asyncio.create_task(one(part, targets[part][i % len(targets[part])])))
    await asyncio.gather(*tasks)
    return {"latencies": latencies, "errors": errors, "wall": time.perf_counter() - started, "total": total}


def ms(values: list[float], q: float) -> str:
    return f"{statistics.quantiles(values, n=100)[int(q) - 1] * 1000:.1f} ms"


async def main(args: argparse.Namespace, work: Path) -> None:
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
        try:
            headers = {"Authorization": f"Bearer {KEY}"}
            connector = aiohttp.TCPConnector(limit=64)
            async with aiohttp.ClientSession(headers=headers, connector=connector) as http:
                await wait_healthy(http, base)
                pages = await collect_pages(http, f"{base}/api/environments/1/batch_exports/{export_id}/runs/")
                print(f"{len(pages):,} pages of 100 runs", flush=True)
                middle = len(pages) // 2
                targets = {
                    "first page": pages[:1],
                    "middle pages": pages[middle : middle + 50],
                    "last pages": pages[-50:],
                }
                result = await load(http, targets, args.rate, args.seconds)
        finally:
            gateway.terminate()
            await gateway.wait()
    every = [v for values in result["latencies"].values() for v in values]
    print(f"requests:     {result['total']:,} at {args.rate:.0f}/s for {args.seconds:.0f} s, {result['errors']} errors")
    print(f"throughput:   {result['total'] / result['wall']:.0f} requests/s")
    print(f"all:          p50 {ms(every, 50)}, p99 {ms(every, 99)}   (target: p50 < 5 ms, p99 < 25 ms)")
    for part, values in result["latencies"].items():
        print(f"{part + ':':<14}p50 {ms(values, 50)}, p99 {ms(values, 99)}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--rate", type=float, default=200)
    parser.add_argument("--seconds", type=float, default=20)
    arguments = parser.parse_args()  # before the scratch directory: `--help` leaves nothing behind
    with scratch_directory("bench-api-") as work:
        asyncio.run(main(arguments, work))
