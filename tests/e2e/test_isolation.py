"""One tenant cannot starve the others (issue 20, findings 5 and 6): destination checks run on threads of their
own, within a deadline; a project has at most so many exports, and a worker runs at most so many export attempts
of one project at once, the rest giving their slot back, so another project's run is not held up.

Everything stays on loopback: the "dead" destination is a port here that accepts connections and never answers.
"""

import asyncio
import contextlib
import dataclasses
import gzip
import json
import threading
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from temporalio.api.enums.v1 import EventType

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import another_gateway, create_export, eventually, insert_events, runs_of, start_run
from tests.support.listeners import loopback_only
from tests.support.receiver import running_receiver
from tests.support.stack import API_KEY, Project, Stack
from worker import build_worker


@dataclass
class Silent:
    """A loopback port that accepts connections, reads what they send, and never answers."""

    port: int
    connections: int = 0
    open: list[asyncio.StreamWriter] = field(default_factory=list)


@contextlib.asynccontextmanager
async def silent() -> AsyncIterator[Silent]:
    """A `Silent` port until the block ends; then every connection is closed, so clients stuck on it return."""
    far = Silent(free_port())

    async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        far.connections += 1
        far.open.append(writer)
        with contextlib.suppress(OSError):
            while await reader.read(65536):
                pass

    server = await asyncio.start_server(accept, LOOPBACK, far.port)
    try:
        yield far
    finally:
        server.close()
        for writer in far.open:
            writer.close()
        await server.wait_closed()


async def call(http: aiohttp.ClientSession, method: str, url: str, **kwargs: Any) -> tuple[int, Any, float]:
    """Status, JSON body and seconds taken of one request."""
    began = time.monotonic()
    async with http.request(method, url, **kwargs) as response:
        return response.status, await response.json(), time.monotonic() - began


# Finding 5: destination checks never hold the threads capture and request parsing use.


async def test_checks_against_a_dead_endpoint_end_at_their_deadline_and_capture_goes_on(project: Project) -> None:
    """Eight Delta Lake checks against an endpoint that never answers (pyarrow's S3 client blocks a thread on each),
    then a one-event gzip `/batch/`: the capture answers at once, four checks end at their 3 s deadline, and the
    other four are refused at once (429), the gateway running four at a time."""
    async with (
        silent() as far,
        another_gateway(project.stack, max_concurrent_checks=4, check_timeout_seconds=3) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        lake = {"storage": "S3Compatible", "bucket_name": "lake", "endpoint_url": f"http://{LOOPBACK}:{far.port}",
                "aws_access_key_id": "key", "aws_secret_access_key": "secret", "table_name": "events"}  # fmt: skip
        step = {"step": 0, "destination": {"type": "DeltaLake", "config": lake}}
        url = f"{gateway}/api/projects/{project.id}/batch_exports/run_test_step_new/"
        checks = [asyncio.create_task(call(http, "POST", url, json=step)) for _ in range(8)]
        await eventually(lambda: _reached(far, 1), within=10, every=0.05)  # the checks block on it
        await asyncio.sleep(0.5)

        body = gzip.compress(
            json.dumps({"api_key": project.token, "batch": [{"event": "e", "distinct_id": "d"}]}).encode()
        )
        status, _, took = await call(http, "POST", f"{gateway}/batch/", data=body, headers={"Content-Encoding": "gzip"})
        assert status == 200 and took < 2, (status, took)

        answers = await asyncio.gather(*checks)
    ran = [(body, took) for status, body, took in answers if status == 200]
    refused = [(body, took) for status, body, took in answers if status == 429]
    assert (len(ran), len(refused)) == (4, 4), answers
    for body, took in ran:
        assert body["result"]["status"] == "Failed" and 2.5 < took < 6, (body, took)
        assert "did not finish within 3 s (BATCH_EXPORTS_CHECK_TIMEOUT_SECONDS)" in body["result"]["message"]
    for body, took in refused:
        assert took < 2 and "BATCH_EXPORTS_MAX_CONCURRENT_CHECKS" in body["detail"], (body, took)


async def test_the_loopback_guard_of_the_tests_covers_the_checks_own_loop(project: Project) -> None:
    """Checks run on a loop of their own; the tests' guard (no DNS query, nothing but loopback) holds there too."""
    http = {"type": "HTTP", "config": {"url": "http://nowhere.invalid/batch/", "token": "t"}}
    with loopback_only() as tripwire:
        status, body = await project.request(
            "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": http}
        )
    assert status == 200 and body["result"]["status"] == "Failed", body
    assert tripwire.lookups == ["nowhere.invalid"] and tripwire.blocked == []


# Finding 6: a cap on a project's exports, and on its export attempts in a worker.


async def test_a_project_has_at_most_its_cap_of_exports(project: Project) -> None:
    file = {"name": "capped", "interval": "hour", "paused": True, "destination": {"type": "File", "config": {}}}
    async with (
        another_gateway(project.stack, max_exports_per_project=2) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        url = f"{gateway}/api/projects/{project.id}/batch_exports/"
        created = []
        for n in range(2):
            status, export, _ = await call(http, "POST", url, json={**file, "destination": _file(f"capped-{n}")})
            assert status == 201, export
            created.append(export)
        status, error, _ = await call(http, "POST", url, json={**file, "destination": _file("one-too-many")})
        assert (status, error["type"], error["code"]) == (400, "validation_error", "max_exports_per_project"), error
        assert "BATCH_EXPORTS_MAX_EXPORTS_PER_PROJECT" in error["detail"] and "(2)" in error["detail"], error
        async with http.delete(f"{url}{created[0]['id']}/") as deleted:
            assert deleted.status == 204
        status, export, _ = await call(http, "POST", url, json={**file, "destination": _file("after-a-delete")})
        assert status == 201, export  # deleted exports do not count


def _file(path: str) -> dict[str, Any]:
    return {"type": "File", "config": {"path": path}}


async def test_one_projects_dead_destinations_do_not_hold_up_anothers(stack: Stack) -> None:
    """Scaled down from the issue's 110 dead exports on a worker of 100 slots (bench/fairness.py measures that):
    six runs of one project POST to a receiver that never answers, on a worker of four activity slots that runs at
    most two attempts of a project at once. The dead project holds two slots, its other attempts give theirs back
    (without using up the one attempt each export has), and another project's run completes within seconds."""
    dead, healthy = await stack.new_project(), await stack.new_project()
    settings = stack.settings.model_copy(
        update={
            "task_queue": f"isolation-{uuid.uuid4().hex[:8]}",
            "worker_max_concurrent_activities": 4,
            "max_concurrent_exports_per_project": 2,
            "shutdown_grace_seconds": 1,
        }
    )
    runtime = dataclasses.replace(stack.runtime, settings=settings)
    end = datetime.now(UTC).replace(microsecond=0)
    await insert_events(stack, dead.id, [end - timedelta(minutes=1)])
    await insert_events(stack, healthy.id, [end - timedelta(minutes=1)] * 3)
    handles, dead_exports = [], []
    async with silent() as far, build_worker(runtime):
        http = {"type": "HTTP", "config": {"url": f"http://{LOOPBACK}:{far.port}/batch/", "token": "t"}}
        for n in range(6):
            export = await create_export(dead, {"name": f"dead-{n}", "interval": "hour", "destination": http})
            dead_exports.append(export["id"])
            handles.append(
                await start_run(
                    runtime, export, start=end - timedelta(hours=1), end=end, task_queue=settings.task_queue
                )
            )

        async def waiting_for_a_slot() -> int:
            """Dead runs whose logs say an attempt gave its slot back."""
            said = 0
            for export_id in dead_exports:
                status, logs = await dead.request("GET", f"batch_exports/{export_id}/logs/")
                assert status == 200, logs
                said += any("waits for a slot" in line["message"] for line in logs["results"])
            return said

        assert await eventually(waiting_for_a_slot, within=20) >= 1
        await eventually(lambda: _reached(far, 2), within=10)
        await asyncio.sleep(1)
        assert far.connections == 2  # the dead project's attempts hold two slots of the worker's four, no more

        export = await create_export(healthy, {"name": "healthy", "interval": "hour", "destination": _file("healthy")})
        began = time.monotonic()
        run = await start_run(runtime, export, start=end - timedelta(hours=1), end=end, task_queue=settings.task_queue)
        await eventually(lambda: _completed(healthy, export["id"]), within=30, every=0.1)
        took = time.monotonic() - began
        assert took < 15, f"the healthy run took {took:.1f} s behind the dead project"
        assert (healthy.files / "healthy").is_dir()
        assert far.connections == 2

        # Throttled attempts used up nothing: the dead runs are still waiting or exporting, none failed.
        for export_id in dead_exports:
            statuses = {r["status"] for r in await runs_of(dead, export_id)}
            assert statuses <= {"Starting", "Running"}, (export_id, statuses)
        logs = (await dead.request("GET", f"batch_exports/{dead_exports[-1]}/logs/"))[1]["results"]
        said = [line["message"] for line in logs if "waits for a slot" in line["message"]]
        assert all("BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT" in message for message in said), said

        # The run's export was dispatched by its project's fairness key.
        keys = [
            event.activity_task_scheduled_event_attributes.priority.fairness_key
            async for event in run.fetch_history_events()
            if event.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED
        ]
        assert keys == [f"project-{healthy.id}"]
        for handle in handles:
            await handle.terminate("the test is over")


async def test_an_attempt_over_its_projects_cap_takes_the_slot_the_running_one_frees(stack: Stack) -> None:
    """A backfill keeps more runs going than its project's share: with one attempt of a project at once, two runs'
    exports to a receiver that takes 2 s over each batch follow one another in the worker. The second waits for
    the first's slot instead of giving its own back (and coming back 5 s later through Temporal)."""
    project = await stack.new_project()
    settings = stack.settings.model_copy(
        update={"task_queue": f"isolation-{uuid.uuid4().hex[:8]}", "max_concurrent_exports_per_project": 1}
    )
    runtime = dataclasses.replace(stack.runtime, settings=settings)
    end = datetime.now(UTC).replace(microsecond=0)
    await insert_events(stack, project.id, [end - timedelta(minutes=1)])
    async with running_receiver("t") as receiver, build_worker(runtime):
        receiver.delay = 2.0
        http = {"type": "HTTP", "config": {"url": receiver.url, "token": "t"}}
        exports = [await create_export(project, {"name": f"slow-{n}", "interval": "hour", "destination": http})
                   for n in range(2)]  # fmt: skip
        runs = [await start_run(runtime, export, start=end - timedelta(hours=1), end=end,
                                task_queue=settings.task_queue) for export in exports]  # fmt: skip
        await asyncio.wait_for(asyncio.gather(*(run.result() for run in runs)), 30)
        assert receiver.delay_started == 2
    for export in exports:
        assert [r["status"] for r in await runs_of(project, export["id"])] == ["Completed"]
        logs = (await project.request("GET", f"batch_exports/{export['id']}/logs/"))[1]["results"]
        assert not [line["message"] for line in logs if "waits for a slot" in line["message"]]
        history = [event async for event in runs[exports.index(export)].fetch_history_events()]
        started = [e.activity_task_started_event_attributes.attempt for e in history
                   if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED]  # fmt: skip
        assert started == [1], started  # one attempt: none gave its slot back


async def _reached(far: Silent, connections: int) -> bool:
    return far.connections >= connections


async def _completed(project: Project, export_id: str) -> bool:
    return [r["status"] for r in await runs_of(project, export_id)] == ["Completed"]


async def test_the_gateway_inflates_and_parses_while_the_default_threads_are_all_busy(project: Project) -> None:
    """Blocking clients in the same process (a worker's destinations, in `make dev` and here) fill the default
    executor: a gzip capture and an export's validation still answer, on the gateway's own threads."""
    loop, release = asyncio.get_running_loop(), threading.Event()
    blockers = [loop.run_in_executor(None, release.wait) for _ in range(64)]
    try:
        body = gzip.compress(
            json.dumps({"api_key": project.token, "batch": [{"event": "x", "distinct_id": "y"}]}).encode()
        )
        async with asyncio.timeout(10):
            captured, _ = await project.request("POST", "/batch/", key=None, data=body,
                                                headers={"Content-Encoding": "gzip"})  # fmt: skip
            created, export = await project.request("POST", "batch_exports/", json={
                "name": "busy", "interval": "hour", "destination": {"type": "NoOp"}})  # fmt: skip
        assert (captured, created) == (200, 201), export
    finally:
        release.set()
        await asyncio.gather(*blockers)


async def test_blocked_clients_leave_threads_for_name_lookups(stack: Stack) -> None:
    """Forty destination clients blocking a thread each (a slow warehouse, say) leave threads for the process's
    other blocking calls: a name lookup answers at once."""
    release = threading.Event()
    blocked = [asyncio.create_task(asyncio.to_thread(release.wait)) for _ in range(40)]
    await asyncio.sleep(0.2)  # every one of them has asked for its thread
    try:
        async with asyncio.timeout(5):
            found = await asyncio.get_running_loop().getaddrinfo("localhost", 80)  # a name: looked up in a thread
        assert found
    finally:
        release.set()
        await asyncio.gather(*blocked)
