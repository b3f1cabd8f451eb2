"""Faults on real processes: nothing sent twice, nothing silent.

Each test exports one interval of 60,000 events to a receiver that records every delivery (counted by uuid)
and, where the fault can touch it, to S3 behind a slow link, breaks one part of the stack in the middle (the
worker SIGTERMed or SIGKILLed, PostgreSQL or the Temporal dev server stopped, the receiver refusing
connections or answering 503), and checks that:

- each run completes, with every record in the destination once (HTTP: at most one POST's worth again);
- no multipart upload is left open;
- the gateway answered 503 (never 500) while a dependency was down;
- the run's logs say what happened to each attempt.

They run on a stack of their own (`tests/support/faults.py`), so stopping its parts disturbs no other test.
Each prints its figures (the table of docs/reliability.md).
"""

import asyncio
import contextlib
import re
import signal
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from temporalio.client import WorkflowHandle

from connectors.destinations.http import BATCH_EVENTS
from entrypoints.embedded import LOOPBACK
from tests.support.destinations import objects, s3_config
from tests.support.faults import PROJECT, FaultStack, export_attempts, fault_stack
from tests.support.helpers import eventually, start_run
from tests.support.receiver import Receiver
from tests.support.seaweed import SeaweedS3
from tests.support.throttle import Throttle, throttled

EVENTS = 30_000
"""About 1 KB each: 30 MB of JSON, more than an S3 export holds in memory (so a slow link keeps its reader waiting)."""
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
START = END - timedelta(hours=1)
RECEIVER_DELAY = 0.06
"""Seconds the receiver takes over each POST of 500 events: the HTTP export lasts about 4 s."""
SLOW_LINK = 2 * 2**20
"""Bytes per second to S3 while the fault strikes: the S3 export would last 15 s."""
CRAWL = 2**19
"""Bytes per second to S3 while PostgreSQL is down."""
FILE_MB = 8
"""The S3 export's files: each uploaded in two parts, and complete before the next is begun."""
UUID = re.compile(rb'"uuid": ?"([0-9a-f-]{36})"')


@pytest.fixture(scope="module")
async def faults(work_dir: Path) -> AsyncIterator[FaultStack]:
    async with fault_stack(work_dir / "faults") as stack:
        step = (END - START) / EVENTS
        await stack.pool.execute(
            """
            INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
            SELECT gen_random_uuid(), $1, 'fault', 'user-' || (i % 1000),
                   jsonb_build_object('i', i, 'pad', repeat(md5(i::text), 28)),
                   $2::timestamptz, $2, $2 + (i - 1) * $3::interval
            FROM generate_series(1, $4) AS i
            """,
            PROJECT,
            START,
            step,
            EVENTS,
        )
        yield stack


@dataclass
class Flight:
    """One interval exported to a receiver (and to S3 behind a throttle) while a fault strikes."""

    stack: FaultStack
    receiver: Receiver
    throttle: Throttle | None
    s3: Any
    bucket: str
    s3_service: SeaweedS3
    runs: dict[str, WorkflowHandle[Any, Any]] = field(default_factory=dict)
    exports: dict[str, dict[str, Any]] = field(default_factory=dict)
    progress: dict[str, list[int]] = field(default_factory=dict)
    """Each run's `records_completed` as the API showed it, every moment it answered."""
    _watching: list[asyncio.Task[None]] = field(default_factory=list)
    began: float = field(default_factory=time.monotonic)
    struck: float = 0.0
    """When the fault struck (the exports were in the middle)."""

    @property
    def s3_config(self) -> dict[str, Any]:
        """The bucket, reached through the throttle."""
        assert self.throttle is not None
        endpoint = f"http://{LOOPBACK}:{self.throttle.port}"
        return {**s3_config(self.s3_service, self.bucket, max_file_size_mb=FILE_MB), "endpoint_url": endpoint}

    async def start(self, name: str, destination: dict[str, Any]) -> None:
        body = {"name": f"{name} {uuid.uuid4().hex[:6]}", "interval": "hour", "paused": True,
                "destination": destination}  # fmt: skip
        status, export = await self.stack.request("POST", "batch_exports/", json=body)
        assert status == 201, export
        self.exports[name] = export
        self.runs[name] = await start_run(self.stack, export, start=START, end=END)
        self._watching.append(asyncio.create_task(self._watch(name)))

    async def _watch(self, name: str) -> None:
        seen = self.progress.setdefault(name, [])
        while True:
            with contextlib.suppress(aiohttp.ClientError):
                status, page = await self.stack.request("GET", f"batch_exports/{self.exports[name]['id']}/runs/")
                if status == 200 and page["results"]:
                    seen.append(page["results"][0]["records_completed"])
            await asyncio.sleep(0.2)

    async def midway(self) -> None:
        """Wait until each export is in the middle: some events received, an S3 upload open."""

        async def there() -> bool:
            if len(set(self.receiver.deliveries)) < EVENTS // 10:
                return False
            return self.throttle is None or bool(
                (await self.s3.list_multipart_uploads(Bucket=self.bucket)).get("Uploads")
            )

        await eventually(there, within=60, every=0.05)
        self.struck = time.monotonic()
        assert len(set(self.receiver.deliveries)) < EVENTS, "the HTTP export ended before the fault"

    async def landed(self, fault: str) -> dict[str, list[str]]:
        """Every run completes, each record once; returns each run's logs."""
        if self.throttle is not None:
            self.throttle.rate = 0
        for handle in self.runs.values():
            await asyncio.wait_for(handle.result(), 120)
        took = f"fault after {self.struck - self.began:.1f} s, completed {time.monotonic() - self.struck:.1f} s later"
        for task in self._watching:
            task.cancel()
        for name, seen in self.progress.items():  # what is in the destination for good never goes down
            assert seen == sorted(seen), (name, seen)
        said: dict[str, list[str]] = {}
        figures = [fault]
        for name, export in self.exports.items():
            status, page = await self.stack.request("GET", f"batch_exports/{export['id']}/runs/")
            assert status == 200, page
            (run,) = page["results"]
            assert (run["status"], run["records_completed"]) == ("Completed", EVENTS), run
            status, logs = await self.stack.request("GET", f"batch_exports/{export['id']}/runs/{run['id']}/logs/")
            assert status == 200, logs
            said[name] = [entry["message"] for entry in logs["results"]]
            attempts = await export_attempts(self.runs[name])
            for attempt in range(1, attempts):  # each attempt but the last has its end in the logs
                words = re.compile(rf"Export attempt {attempt} (failed|timed out|was|ended)|\(attempt {attempt}\)")
                assert any(words.search(message) for message in said[name]), (attempt, said[name])
            figures.append(f"{name}: {attempts} attempts")
        delivered = Counter(self.receiver.deliveries)
        assert len(delivered) == EVENTS
        again = len(self.receiver.deliveries) - EVENTS
        assert again <= BATCH_EVENTS, f"{again} events delivered twice"
        figures.append(f"HTTP delivered {len(self.receiver.deliveries):,} for {EVENTS:,} ({again} again)")
        if self.throttle is not None:
            assert not (await self.s3.list_multipart_uploads(Bucket=self.bucket)).get("Uploads")
            uuids = [m[1] for data in (await objects(self.s3, self.bucket)).values() for m in UUID.finditer(data)]
            assert len(uuids) == len(set(uuids)) == EVENTS
            figures.append(f"S3 holds {len(uuids):,}, no upload open")
        print("; ".join([*figures, took]))
        for name, messages in said.items():
            print("\n".join(f"  {name}: {message}" for message in reversed(messages)))
        return said


@pytest.fixture
async def flight(faults: FaultStack, s3: Any, s3_service: SeaweedS3) -> AsyncIterator[Flight]:
    receiver = Receiver(f"phc_{uuid.uuid4().hex}", delay=RECEIVER_DELAY)
    await receiver.listen()
    bucket = f"faults-{uuid.uuid4().hex[:8]}"
    await s3.create_bucket(Bucket=bucket)
    try:
        async with throttled(s3_service.port, SLOW_LINK) as throttle:
            yield Flight(faults, receiver, throttle, s3, bucket, s3_service)
    finally:
        await receiver.refuse()
        if faults.worker is None or faults.worker.poll() is not None:
            faults.start_worker()  # the next test finds a worker, whatever happened to this one's


async def both(flight: Flight) -> None:
    """Export the interval to the receiver and to S3 (files of 8 MB, each uploaded in parts) side by side."""
    receiver = flight.receiver
    await flight.start("http", {"type": "HTTP", "config": {"url": receiver.url, "token": receiver.token}})
    await flight.start("s3", {"type": "S3Compatible", "config": flight.s3_config})


async def answers(stack: FaultStack, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
    """The gateway's answer, which is never a 500."""
    status, body = await stack.request(method, path, **kwargs)
    assert status != 500, (method, path, body)
    return status, body


async def database_unavailable(stack: FaultStack, export: dict[str, Any]) -> None:
    """With PostgreSQL down, every route that needs it answers 503 with the usual error body."""
    event = {"event": "e", "distinct_id": "d", "properties": {}}
    calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "batch_exports/", {}),
        ("GET", f"batch_exports/{export['id']}/", {}),
        ("GET", f"batch_exports/{export['id']}/runs/", {}),
        ("GET", f"batch_exports/{export['id']}/logs/", {}),
        ("POST", "batch_exports/", {"json": {"name": "x", "interval": "hour", "destination": {"type": "NoOp"}}}),
        ("POST", "/batch/", {"json": {"api_key": "phc_faults", "batch": [event]}}),
    ]
    for method, path, kwargs in calls:
        status, body = await answers(stack, method, path, **kwargs)
        assert status == 503 and body["code"] == "database_unavailable", (method, path, status, body)
        assert set(body) == {"type", "code", "detail", "attr"}
    status, health = await answers(stack, "GET", "/_health")
    assert status == 503 and health["database"].startswith("unavailable"), health


async def test_worker_sigterm_stops_at_a_checkpoint(faults: FaultStack, flight: Flight) -> None:
    await both(flight)
    await flight.midway()
    stopping = faults.worker
    faults.start_worker()  # the one that takes over, starting while the other stops
    began = time.monotonic()
    code = await faults.stop(stopping, signal.SIGTERM)
    took = time.monotonic() - began
    assert code == 0 and took < faults.settings.shutdown_grace_seconds + 5, (code, took)
    said = await flight.landed(f"worker SIGTERM (exit {code} after {took:.1f} s)")
    for name in ("http", "s3"):
        assert any("attempt interrupted by worker shutdown, resuming from checkpoint" in m for m in said[name])
    assert len(flight.receiver.deliveries) == EVENTS  # stopped after a POST was taken: none sent twice


async def test_worker_sigkill_is_resumed_from_the_checkpoint(faults: FaultStack, flight: Flight) -> None:
    await both(flight)
    await flight.midway()
    killed = faults.worker
    faults.start_worker()  # the one that takes over, starting while Temporal waits for the lost heartbeats
    await faults.stop(killed, signal.SIGKILL)
    received = len(set(flight.receiver.deliveries))
    said = await flight.landed(f"worker SIGKILL after {received:,} events")
    (lost,) = [m for m in said["http"] if "Export attempt 1 timed out after its worker stopped heartbeating" in m]
    resumed = int(re.search(r"resumed after record ([\d,]+)", lost)[1].replace(",", ""))  # type: ignore[index]
    assert received - BATCH_EVENTS <= resumed <= received  # the checkpoint of the last POST taken
    assert any("Export attempt 1 timed out after its worker stopped heartbeating" in m for m in said["s3"])


async def test_postgres_stopped(faults: FaultStack, flight: Flight) -> None:
    await both(flight)
    await flight.midway()
    await faults.stop_postgres()
    stopped = time.monotonic()
    try:
        await database_unavailable(faults, flight.exports["http"])
        # The link to S3 slows down: the S3 export's reader waits with the batches it read ahead (which the link
        # takes half a minute to drain), and the cut read is still noticed at once.
        assert flight.throttle is not None
        flight.throttle.rate = CRAWL
        s3_run = flight.runs["s3"]

        async def failed() -> bool:
            pending = (await s3_run.describe()).raw_description.pending_activities
            return bool(pending) and pending[0].attempt > 1

        await eventually(failed, within=20, every=0.2)
        noticed = time.monotonic() - stopped
        assert noticed < 10, noticed
        await asyncio.sleep(max(0.0, 4.5 - (time.monotonic() - stopped)))
    finally:
        await faults.start_postgres()
    down = time.monotonic() - stopped
    said = await flight.landed(f"PostgreSQL stopped {down:.0f} s (read cut noticed after {noticed:.1f} s)")
    late = [m for name in said for m in said[name] if "recorded late" in m]
    assert late, said  # the attempts that failed meanwhile, recorded once the database was back


async def test_temporal_stopped(faults: FaultStack, flight: Flight) -> None:
    await both(flight)
    await flight.midway()
    await faults.stop_temporal()
    stopped = time.monotonic()
    try:
        export = flight.exports["http"]
        status, body = await answers(faults, "POST", f"batch_exports/{export['id']}/unpause/")
        assert status == 503 and body["code"] == "temporal_unavailable", body
        await answers(faults, "GET", f"batch_exports/{export['id']}/runs/")
        status, health = await answers(faults, "GET", "/_health")
        assert status == 503 and health["temporal"].startswith("unavailable"), health
        await asyncio.sleep(max(0.0, 6 - (time.monotonic() - stopped)))
    finally:
        await faults.start_temporal()
    await flight.landed(f"Temporal dev server stopped {time.monotonic() - stopped:.0f} s")


@pytest.mark.parametrize("refusal", ["connections refused", "503"])
async def test_receiver_refusing(faults: FaultStack, flight: Flight, refusal: str) -> None:
    flight.throttle = None  # the receiver alone
    await flight.start("http", {"type": "HTTP", "config": {"url": flight.receiver.url, "token": flight.receiver.token}})
    await flight.midway()
    if refusal == "503":
        flight.receiver.answer = 503
    else:
        await flight.receiver.refuse()
    stopped = time.monotonic()
    await asyncio.sleep(9)  # past the destination's own retries (7.5 s): the attempt fails
    if refusal == "503":
        flight.receiver.answer = 200
    else:
        await flight.receiver.listen()
    said = await flight.landed(f"receiver: {refusal} for {time.monotonic() - stopped:.0f} s")
    assert any("Export attempt 1 failed: DestinationUnavailable" in m for m in said["http"]), said


async def test_gateway_drains_requests_in_flight_on_sigterm(faults: FaultStack) -> None:
    """A request in flight when the gateway is told to stop is answered; the gateway then exits."""
    slow = Receiver(f"phc_{uuid.uuid4().hex}", delay=2)  # the destination check below waits on it
    await slow.listen()
    try:
        check = {"step": 0, "destination": {"type": "HTTP", "config": {"url": slow.url, "token": slow.token}}}
        request = asyncio.create_task(faults.request("POST", "batch_exports/run_test_step_new/", json=check))
        await eventually(lambda: asyncio.sleep(0, slow.delay_started), within=10, every=0.05)  # in flight
        assert faults.gateway is not None
        faults.gateway.send_signal(signal.SIGTERM)
        status, answer = await request
        assert (status, answer["result"]["status"]) == (200, "Passed"), answer
        assert await asyncio.to_thread(faults.gateway.wait, 10) == 0
    finally:
        await slow.refuse()
        await faults.start_gateway()
