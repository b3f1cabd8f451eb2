"""Two worker processes and two gateways on one task queue, as a deployment runs them: one worker and one gateway
are SIGKILLed in the middle of a backfill. The backfill completes on the other worker, every record is in the
destination exactly once (each interval one completed run, the files holding each event's uuid once), and the
other gateway answered every request throughout."""

import asyncio
import json
import signal
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from tests.support.helpers import eventually
from tests.support.processes import gateway_process, worker_process
from tests.support.stack import API_KEY, Project

HOURS = 96
EVENTS_PER_HOUR = 2_000
START = datetime(2025, 6, 1, tzinfo=UTC)


async def test_a_backfill_survives_a_killed_worker_and_gateway(project: Project, work_dir: Path) -> None:
    settings = project.stack.settings
    scratch = work_dir / f"two-workers-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    queue, path = f"two-workers-{uuid.uuid4().hex[:8]}", f"two-workers-{uuid.uuid4().hex[:8]}"
    await project.stack.pool.execute(
        """
        INSERT INTO events (uuid, team_id, event, distinct_id, properties, timestamp, created_at, inserted_at)
        SELECT gen_random_uuid(), $1, 'two-workers', 'user-' || (i % 100), jsonb_build_object('i', i),
               $2::timestamptz + i * $3::interval, $2::timestamptz + i * $3::interval,
               $2::timestamptz + i * $3::interval
        FROM generate_series(0, $4 - 1) AS i
        """,
        project.id,
        START,
        timedelta(hours=1) / EVENTS_PER_HOUR,
        HOURS * EVENTS_PER_HOUR,
    )
    common: dict[str, object] = {"task_queue": queue, "backfill_concurrency": 4}
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with (
        worker_process(settings, scratch / "worker-1.log", **common) as doomed_worker,
        worker_process(settings, scratch / "worker-2.log", **common),
        gateway_process(settings, scratch / "gateway-1.log", **common) as doomed_gateway,
        gateway_process(settings, scratch / "gateway-2.log", **common) as gateway,
    ):
        async with aiohttp.ClientSession(headers=headers) as http:
            first = f"{doomed_gateway.url}/api/environments/{project.id}/batch_exports/"
            body = {"name": "two workers", "interval": "hour", "paused": True,
                    "destination": {"type": "File", "config": {"path": path}}}  # fmt: skip
            async with http.post(first, json=body) as response:
                assert response.status == 201, await response.text()
                export = await response.json()
            span = {"start_at": START.isoformat(), "end_at": (START + timedelta(hours=HOURS)).isoformat()}
            async with http.post(f"{first}{export['id']}/backfills/", json=span) as response:
                assert response.status == 201, await response.text()
                backfill_id = (await response.json())["backfill_id"]

            # The other gateway is asked about the backfill ten times a second, from start to end.
            other = f"{gateway.url}/api/environments/{project.id}/batch_exports/{export['id']}/backfills/{backfill_id}/"
            answers: list[int | str] = []
            latest: dict[str, Any] = {}

            async def watch() -> None:
                while True:
                    try:
                        async with http.get(other, timeout=aiohttp.ClientTimeout(total=5)) as response:
                            answers.append(response.status)
                            if response.status == 200:
                                latest.update(await response.json())
                    except (aiohttp.ClientError, TimeoutError) as error:
                        answers.append(f"{type(error).__name__}: {error}")
                    await asyncio.sleep(0.1)

            watcher = asyncio.create_task(watch())
            try:

                async def midway() -> bool:
                    return latest.get("progress", {}).get("finished_runs", 0) >= HOURS // 6

                await eventually(midway, within=120, every=0.05)
                doomed_worker.send_signal(signal.SIGKILL)
                doomed_gateway.process.send_signal(signal.SIGKILL)
                killed = time.monotonic()
                finished_at_kill = latest["progress"]["finished_runs"]
                assert finished_at_kill < HOURS, "the backfill ended before the kill: nothing was tested"

                async def completed() -> bool:
                    return latest.get("status") == "Completed"

                await eventually(completed, within=180, every=0.2)
                recovered_in = time.monotonic() - killed
            finally:
                watcher.cancel()
        assert doomed_worker.wait() == -signal.SIGKILL
        assert doomed_gateway.process.wait() == -signal.SIGKILL

    assert len(answers) > 10 * recovered_in / 2  # it was asked throughout (at least every 0.2 s)
    assert [answer for answer in answers if answer != 200] == []
    assert latest["progress"]["finished_runs"] == HOURS

    runs = await project.stack.pool.fetch(
        "SELECT data_interval_end, status, records_completed FROM batch_export_runs WHERE batch_export_id = $1",
        uuid.UUID(export["id"]),
    )
    completed_runs = [run for run in runs if run["status"] == "Completed"]
    assert len({run["data_interval_end"] for run in completed_runs}) == len(completed_runs) == HOURS
    assert sum(run["records_completed"] for run in completed_runs) == HOURS * EVENTS_PER_HOUR

    # (A write the kill interrupted may leave its hidden partial file behind; only complete files count.)
    files = [file for file in (project.files / path).rglob("*") if file.is_file()]
    files = [file for file in files if not file.name.startswith(".")]
    assert len(files) == HOURS
    uuids = [json.loads(line)["uuid"] for file in files for line in file.read_text().splitlines()]
    assert len(uuids) == len(set(uuids)) == HOURS * EVENTS_PER_HOUR
