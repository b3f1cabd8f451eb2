"""Benchmark: events of about 1 KB captured over `/batch/` by concurrent clients, against a COPY floor.

    .venv/bin/python -m bench.capture [--events 200000] [--clients 4] [--batches 100,1000] [--identify 0,20]
                                      [--rounds 2]

Starts PostgreSQL in a temporary directory and the gateway as its own process (`python -m api`, as it
is deployed), makes the request bodies before timing (1 KB events of realistic properties, 20,000
distinct ids, one in ten events with `$set`; with `--identify N`, one in N events an `$identify` of a
user whose visitor id sent an event a few events before, which merges the visitor's person into the
user's), then for each case (a batch size and a mix; a project each) posts `--events` events from `--clients`
concurrent clients and prints events/s, MB/s and the CPU seconds the gateway, PostgreSQL and the clients (this
process) used per 100,000 events, with the load: on a machine of few cores their sum is what bounds it. The cases
and the floor run in `--rounds` rounds, in turn, so a noisy minute cannot favour one; then each case's median and
range over the rounds.
Before timing, each project sees one event of each of its users and the tables are analyzed, as in a
project that has been capturing for a while (its persons exist; the first batches of a new project also
create them).

The floor, measured in the same run, is the same rows (what the events table holds after capture)
written by binary COPY from as many connections, in chunks of 10,000: the database taking the rows and
nothing else (its CPU seconds printed too). Every event must be stored once, or the benchmark fails.
"""

import argparse
import asyncio
import functools
import json
import os
import random
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import psutil

from batch_exports.crypto import generate_key
from batch_exports.store import db, projects
from bench import measure
from entrypoints.embedded import LOOPBACK, EmbeddedPostgres, free_port
from tests.support.scratch import scratch_directory

USERS = 20_000
FLOOR_CHUNK = 10_000


def make_event(rnd: random.Random, i: int, identify: int = 0) -> dict[str, Any]:
    """The `i`th event; with `identify`, the last of every `identify` events identifies a user of the visitor who
    sent the first (a visitor of its own, whose person is then merged away): in the same batch when the batch
    size is a multiple of `identify`, as a client sends its events in order."""
    user = rnd.randrange(USERS)
    properties = {
        "$current_url": f"https://example.com/products/{i % 997}?ref=campaign_{i % 13}",
        "$browser": rnd.choice(["Chrome", "Firefox", "Safari"]), "$browser_version": 120 + i % 10,
        "$os": "Mac OS X", "$device_type": "Desktop", "$screen_height": 1080, "$screen_width": 1920,
        "$referrer": f"https://www.google.com/search?q={uuid.UUID(int=rnd.getrandbits(128)).hex}",
        "$lib": "web", "$lib_version": "1.160.0", "$session_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
        "$window_id": uuid.UUID(int=rnd.getrandbits(128)).hex, "plan": "pro", "price": (i % 100) * 1.5,
        "utm_source": "newsletter", "title": f'A product page with "quotes" and ünïcode {rnd.getrandbits(64):x}',
        "$pathname": f"/products/{i % 997}", "$insert_id": uuid.UUID(int=rnd.getrandbits(128)).hex,
        "padding": "x" * 300,
    }  # fmt: skip
    event = {
        "event": rnd.choice(["$pageview", "$autocapture", "signed_up", "$pageleave"]),
        "distinct_id": f"user-{user}",
        "uuid": str(uuid.UUID(int=rnd.getrandbits(128))),
        "timestamp": datetime.now(UTC).isoformat(),
        "properties": properties,
    }
    if i % 10 == 0:
        event["$set"] = {"email": f"user{user}@example.com", "plan": rnd.choice(["free", "pro"])}
    if identify and i % identify == 0:
        event["distinct_id"] = f"visitor-{i}"
    elif identify and i % identify == identify - 1:
        event["event"] = "$identify"
        properties["$anon_distinct_id"] = f"visitor-{i - i % identify}"
    return event


def bodies(token: str, events: int, batch: int, seed: int, identify: int = 0) -> list[bytes]:
    rnd = random.Random(seed)
    made = []
    for start in range(0, events, batch):
        chunk = [make_event(rnd, start + i, identify) for i in range(min(batch, events - start))]
        made.append(json.dumps({"api_key": token, "batch": chunk}).encode())
    return made


def every_user(token: str) -> list[bytes]:
    """One small event of each user, in batches of 1,000."""
    users = [{"event": "seen", "distinct_id": f"user-{user}", "properties": {}} for user in range(USERS)]
    return [json.dumps({"api_key": token, "batch": users[i : i + 1000]}).encode() for i in range(0, USERS, 1000)]


async def post_all(url: str, work: list[bytes], clients: int) -> float:
    """Post every body from `clients` concurrent clients; the wall time."""
    queue = list(reversed(work))
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def client() -> None:
            while queue:
                body = queue.pop()
                async with http.post(url, data=body, headers={"Content-Type": "application/json"}) as response:
                    if response.status != 200:
                        raise RuntimeError(f"capture answered {response.status}: {await response.text()}")

        started = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(clients)))
        return time.perf_counter() - started


async def floor(dsn: str, rows: list[tuple[Any, ...]], clients: int, postgres: EmbeddedPostgres) -> tuple[float, float]:
    """Binary COPY of the rows into the events table from `clients` connections; the wall time and PostgreSQL's
    CPU seconds (taken while the connections' backends live)."""

    async def binary_json(conn: asyncpg.Connection) -> None:  # jsonb's binary form: a version byte, then text
        await conn.set_type_codec(
            "jsonb", schema="pg_catalog", format="binary", encoder=lambda text: b"\x01" + text.encode(),
            decoder=lambda data: data[1:].decode(),
        )  # fmt: skip

    columns = ("uuid", "team_id", "event", "distinct_id", "properties", "person_id", "person_properties",
               "timestamp", "created_at", "elements_chain")  # fmt: skip
    chunks = [rows[i : i + FLOOR_CHUNK] for i in range(0, len(rows), FLOOR_CHUNK)]
    pool = await asyncpg.create_pool(dsn, min_size=clients, max_size=clients, init=binary_json)
    try:

        async def copier() -> None:
            while chunks:
                chunk = chunks.pop()
                async with pool.acquire() as conn:
                    await conn.copy_records_to_table("events", records=chunk, columns=columns)

        before = postgres_cpu(postgres)
        started = time.perf_counter()
        await asyncio.gather(*(copier() for _ in range(clients)))
        return time.perf_counter() - started, postgres_cpu(postgres) - before
    finally:
        await pool.close()


def floor_rows(work: list[bytes], team_id: int) -> list[tuple[Any, ...]]:
    """The rows capture makes of the bodies (a person per distinct id, properties as text)."""
    people: dict[str, uuid.UUID] = {}
    rows = []
    now = datetime.now(UTC)
    for body in work:
        for event in json.loads(body)["batch"]:
            person = people.setdefault(event["distinct_id"], uuid.uuid4())
            rows.append((uuid.UUID(event["uuid"]), team_id, event["event"], event["distinct_id"],
                         json.dumps(event["properties"]), person, json.dumps(event.get("$set", {})),
                         datetime.fromisoformat(event["timestamp"]), now, ""))  # fmt: skip
    return rows


def cpu(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def postgres_cpu(postgres: EmbeddedPostgres) -> float:
    assert postgres.process is not None
    parent = psutil.Process(postgres.process.pid)
    return sum(cpu(p) for p in [parent, *parent.children(recursive=True)] if p.is_running())


@dataclass
class Case:
    """One measured capture: a batch size and a mix (one event in `identify` an `$identify`, 0: none)."""

    size: int
    identify: int

    @property
    def label(self) -> str:
        return f"batches of {self.size:>5}" + (f", 1 in {self.identify} $identify" if self.identify else ", plain")


@dataclass
class Measured:
    seconds: float
    megabytes: float
    gateway_cpu: float
    postgres_cpu: float
    client_cpu: float
    load: str


async def capture_once(
    url: str, pool: asyncpg.Pool, gateway: psutil.Process, postgres: EmbeddedPostgres, team: int,
    work_bodies: list[bytes], args: argparse.Namespace,
) -> Measured:  # fmt: skip
    """Post the bodies (their project has met its users already), check every event is stored once."""
    megabytes = sum(len(b) for b in work_bodies) / 2**20
    before = (cpu(gateway), postgres_cpu(postgres), time.process_time())
    seconds = await post_all(url, work_bodies, args.clients)
    after = (cpu(gateway), postgres_cpu(postgres), time.process_time())
    stored = await pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1 AND event <> 'seen'", team)
    if stored != args.events:
        raise SystemExit(f"project {team}: {stored:,} events stored, {args.events:,} sent")
    gateway_cpu, postgres_cpu_, client_cpu = (end - start for start, end in zip(before, after, strict=True))
    return Measured(seconds, megabytes, gateway_cpu, postgres_cpu_, client_cpu, measure.load())


async def gateway_up(health: str, within: float = 120) -> None:
    """Wait until the gateway answers (a busy machine may take a while to start it), or fail saying so."""
    deadline = time.monotonic() + within
    async with aiohttp.ClientSession() as http:
        while True:
            try:
                async with http.get(health):
                    return
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise SystemExit(f"the gateway did not answer {health} within {within:.0f} s") from None
                await asyncio.sleep(0.2)


async def main(args: argparse.Namespace, work: Path) -> None:
    cases = [Case(size, mix) for size in args.batches for mix in args.identify]
    per_100k = 100_000 / args.events
    with EmbeddedPostgres(work / "postgres", free_port()).start() as postgres:
        dsn = postgres.create_database("batch_exports")
        await asyncio.to_thread(db.migrate, dsn)
        pool = await db.create_pool(dsn)
        teams = {(round_, i): 2 + round_ * len(cases) + i for round_ in range(args.rounds) for i in range(len(cases))}
        await projects.ensure(pool, 1, "capture warm-up", "phc_bench_warm")
        for team in teams.values():
            await projects.ensure(pool, team, f"capture {team}", f"phc_bench_{team}")
        floor_teams = {round_: 2 + args.rounds * len(cases) + round_ for round_ in range(args.rounds)}
        for team in floor_teams.values():
            await projects.ensure(pool, team, f"floor {team}", f"phc_bench_{team}")
        port = free_port()
        env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": dsn, "BATCH_EXPORTS_ENCRYPTION_KEY": generate_key(),
               "BATCH_EXPORTS_API_PORT": str(port), "TEMPORAL_ADDRESS": f"{LOOPBACK}:{free_port()}"}  # fmt: skip
        log = (work / "gateway.log").open("wb")
        gateway = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "api", env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://{LOOPBACK}:{port}/batch/"
        results: dict[int, list[tuple[Case, Measured]]] = {}
        floors: dict[int, tuple[float, float, str]] = {}
        try:
            await gateway_up(f"http://{LOOPBACK}:{port}/_health")
            await post_all(url, bodies("phc_bench_warm", 2000, 100, seed=0), args.clients)  # connections warmed up
            for team in teams.values():  # each project has met its users, as a running one has
                await post_all(url, every_user(f"phc_bench_{team}"), args.clients)
            await pool.execute("ANALYZE")
            for round_ in range(args.rounds):  # the cases and the floor in turn: no minute favours one
                print(f"round {round_ + 1} of {args.rounds}: making {args.events:,} events per case ...", flush=True)
                results[round_] = []
                for i, case in enumerate(cases):
                    team = teams[(round_, i)]
                    seed = case.size + 1000 * round_ + case.identify  # events of their own in each round
                    made = bodies(f"phc_bench_{team}", args.events, case.size, seed, case.identify)
                    measured = await capture_once(url, pool, psutil.Process(gateway.pid), postgres, team, made, args)
                    results[round_].append((case, measured))
                    print(
                        f"  {case.label}: {args.events / measured.seconds:,.0f} events/s; {measured.load}", flush=True
                    )
                made = bodies("phc_bench_floor", args.events, cases[0].size, 7 + 1000 * round_, cases[0].identify)
                seconds, postgres_seconds = await floor(dsn, floor_rows(made, floor_teams[round_]), args.clients,
                                                        postgres)  # fmt: skip
                floors[round_] = (seconds, postgres_seconds, measure.load())
                print(f"  floor: {args.events / seconds:,.0f} rows/s; {floors[round_][2]}", flush=True)
        except BaseException:
            print((work / "gateway.log").read_text()[-3000:])
            raise
        finally:
            if gateway.returncode is None:
                gateway.terminate()
            await gateway.wait()
            log.close()
        await pool.close()
    first = results[0][0][1]
    print(f"\n{args.events:,} events of about {first.megabytes * 2**20 / args.events / 1024:.1f} KB per case, "
          f"{args.clients} concurrent clients; CPU seconds per 100,000 events")  # fmt: skip
    for round_ in range(args.rounds):
        floor_seconds, floor_cpu, floor_load = floors[round_]
        print(f"round {round_ + 1}: floor (binary COPY, {args.clients} connections) {args.events / floor_seconds:,.0f} "
              f"rows/s, PostgreSQL {floor_cpu * per_100k:.2f} CPU s; {floor_load}")  # fmt: skip
        for case, m in results[round_]:
            print(f"  {case.label}: {args.events / m.seconds:,.0f} events/s, {m.megabytes / m.seconds:.1f} MB/s, "
                  f"{floor_seconds / m.seconds:.2f} of the floor; CPU s: gateway {m.gateway_cpu * per_100k:.2f}, "
                  f"PostgreSQL {m.postgres_cpu * per_100k:.2f}, clients {m.client_cpu * per_100k:.2f}; "
                  f"{m.load}")  # fmt: skip
    print(f"\nover {args.rounds} round(s), median (range); target: 0.5 of the floor for batches of 100")
    for i, case in enumerate(cases):
        runs = [(floors[r][0], results[r][i][1]) for r in range(args.rounds)]
        print(f"  {case.label}: {measure.spread([args.events / m.seconds for _, m in runs], ' events/s', 0)}, "
              f"{measure.spread([f / m.seconds for f, m in runs])} of the floor; CPU s per 100,000 events: "
              f"gateway {measure.spread([m.gateway_cpu * per_100k for _, m in runs])}, "
              f"PostgreSQL {measure.spread([m.postgres_cpu * per_100k for _, m in runs])}")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--batches", type=functools.partial(measure.whole_numbers, least=1), default="100,1000")
    parser.add_argument("--identify", type=measure.whole_numbers, default="0",
                        help="one event in N an $identify (0: none); comma-separated mixes are measured in turn, "
                        "e.g. 0,20")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every case and the floor, in turn")
    arguments = parser.parse_args()  # before the scratch directory: `--help` leaves nothing behind
    with scratch_directory("bench-capture-") as work:
        asyncio.run(main(arguments, work))
