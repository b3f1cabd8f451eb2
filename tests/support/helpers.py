"""Small helpers the end-to-end tests share."""

import asyncio
import contextlib
import json
import os
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol, TypeVar

from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from api.app import create_app
from batch_exports.settings import Settings
from batch_exports.store import runs
from batch_exports.temporal.schedules import run_retry_policy
from contracts import timeouts
from contracts.intervals import Interval, IntervalSpec, run_workflow_id
from contracts.workflows import RECONCILE_WORKFLOW, RUN_WORKFLOW, ReconcileInputs, ReconcileResult, RunInputs
from entrypoints.embedded import temporal_cli
from tests.support.listeners import serving
from tests.support.posthog_tables import Event, PostHogClickHouse, ingested
from tests.support.stack import Project, Stack

T = TypeVar("T")


async def started_run(pool: Any, **fields: Any) -> uuid.UUID:
    """A run recorded as `Starting` (`runs.start`), of an export that is there."""
    run_id = await runs.start(pool, **fields)
    assert run_id is not None, f"export {fields.get('batch_export_id')} is gone or deleted"
    return run_id


async def eventually(probe: Callable[[], Awaitable[T | None]], within: float = 30, every: float = 0.2) -> T:
    """Poll `probe` until it returns something truthy; fail after `within` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = await probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {within}s (last: {result!r})")
        await asyncio.sleep(every)


def temporal_cli_run(*args: str, address: str) -> str:
    """Run the `temporal` CLI as an operator would, against the test server."""
    completed = subprocess.run(
        [temporal_cli(), *args, "--address", address], capture_output=True, text=True, check=False, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


async def create_export(project: Project, body: dict[str, Any]) -> dict[str, Any]:
    """Create an export whose runs the test starts itself.

    It is created paused unless `body` says otherwise: its schedule must not add a run of its own when
    the clock passes an interval boundary in the middle of a test that counts runs.
    """
    status, export = await project.request("POST", "batch_exports/", json={"paused": True, **body})
    assert status == 201, export
    return export  # type: ignore[no-any-return]


async def clear_of_the_hour(margin: timedelta = timedelta(seconds=15)) -> None:
    """Wait past the top of the hour if it is less than `margin` away: a trigger exports the last whole hour, and a
    test that reckons that hour before it triggers must not see the clock pass it in between."""
    now = datetime.now(UTC)
    top = now.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    if top - now < margin:
        await asyncio.sleep((top - now).total_seconds() + 1)


def later_boundary(hours: int = 2) -> datetime:
    """An hourly boundary `hours` from now (less than one): a run ending there waits for it, as a fresh fire."""
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(hours=hours)


def event(name: str, distinct_id: str, **properties: Any) -> dict[str, Any]:
    return {"event": name, "distinct_id": distinct_id, "properties": properties}


class Runs(Protocol):
    """What starts runs: the shared stack, or a stack of a test's own."""

    @property
    def client(self) -> Client: ...

    @property
    def settings(self) -> Settings: ...


async def start_run(
    stack: Runs,
    export: dict[str, Any],
    *,
    end: datetime,
    start: datetime | None = None,
    execution_timeout: timedelta | None = None,
    task_queue: str | None = None,
) -> WorkflowHandle[Any, Any]:
    """Start a run the way the export's schedule would (same id, inputs, timeout and retry policy)."""
    settings = stack.settings
    interval = Interval(export["interval"])
    return await stack.client.start_workflow(
        RUN_WORKFLOW,
        RunInputs(
            batch_export_id=export["id"],
            team_id=export["team_id"],
            spec=IntervalSpec(interval, export["timezone"], export["offset_day"], export["offset_hour"]),
            data_interval_start=start,
            data_interval_end=end,
        ),
        id=run_workflow_id(export["id"], end),
        task_queue=task_queue or settings.task_queue,
        execution_timeout=execution_timeout or timeouts.execution_timeout(interval),
        retry_policy=run_retry_policy(settings),
    )


async def reconcile(stack: Stack) -> ReconcileResult:
    """Run the reconciliation workflow once, as its schedule would."""
    result: ReconcileResult = await stack.client.execute_workflow(
        RECONCILE_WORKFLOW,
        ReconcileInputs(every_seconds=0, passes=1),
        id=f"reconcile-{uuid.uuid4()}",
        task_queue=stack.settings.task_queue,
        result_type=ReconcileResult,
    )
    return result


async def runs_of(project: Project, export_id: str, **query: str) -> list[dict[str, Any]]:
    status, page = await project.request("GET", f"batch_exports/{export_id}/runs/", params=query)
    assert status == 200, page
    return page["results"]  # type: ignore[no-any-return]


async def runs_until(
    project: Project, export_id: str, done: Callable[[list[dict[str, Any]]], bool], within: float = 30
) -> list[dict[str, Any]]:
    """The export's runs (oldest first) once `done` holds for them."""

    async def probe() -> list[dict[str, Any]] | None:
        found = await runs_of(project, export_id, ordering="created_at")
        return found if done(found) else None

    return await eventually(probe, within=within)


async def insert_events(stack: Stack, team_id: int, inserted_at: list[datetime]) -> set[str]:
    """Events as an earlier ingestion left them (an `inserted_at` in the past), in the stack's source; returns
    their uuids."""
    rows = [(uuid.uuid4(), team_id, f"user-{i}", at) for i, at in enumerate(inserted_at)]
    if stack.settings.source == "clickhouse":
        events = [Event(team_id, "historical", distinct_id, uuid.uuid4(), at, at, at, uuid=id)
                  for id, _, distinct_id, at in rows]  # fmt: skip
        await asyncio.to_thread(PostHogClickHouse.of(stack.settings).insert, "events", [e.row() for e in events])
        return {str(row[0]) for row in rows}
    await stack.pool.executemany(
        """
        INSERT INTO events (uuid, team_id, event, distinct_id, timestamp, created_at, inserted_at)
        VALUES ($1, $2, 'historical', $3, $4, $4, $4)
        """,
        rows,
    )
    return {str(row[0]) for row in rows}


@contextlib.asynccontextmanager
async def another_gateway(stack: Stack, *, temporal_address: str | None = None, **settings: Any) -> AsyncIterator[str]:
    """A second gateway on its own port, with other settings or another Temporal address; yields its URL."""
    address = os.environ["TEMPORAL_ADDRESS"]
    os.environ["TEMPORAL_ADDRESS"] = temporal_address or address
    try:  # the app connects to Temporal when it starts, which `serving` does
        app = create_app(stack.settings.model_copy(update=settings))
        async with serving(app) as url:
            os.environ["TEMPORAL_ADDRESS"] = address
            yield url
    finally:
        os.environ["TEMPORAL_ADDRESS"] = address


async def ingest(project: Project, batch: list[dict[str, Any]]) -> None:
    """Events in PostHog's capture format into the project's source: sent to this service's capture endpoint,
    or written into PostHog's ClickHouse tables as its ingestion writes them (a few seconds ago)."""
    if project.stack.settings.source != "clickhouse":
        return await capture(project, batch)
    rows = ingested(project.id, batch, datetime.now(UTC) - timedelta(seconds=5))
    await asyncio.to_thread(PostHogClickHouse.of(project.stack.settings).insert, "events", rows)


async def capture(project: Project, batch: list[dict[str, Any]]) -> None:
    status, body = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": batch})
    assert status == 200, body


async def export_file_now(project: Project, path: str, **fields: Any) -> tuple[Path, dict[str, Any]]:
    """Create a File export, run the hour that ends now, and return the file it wrote and its run."""
    config = {"path": path, **fields.pop("config", {})}
    body = {"name": path, "interval": "hour", "destination": {"type": "File", "config": config}, **fields}
    export = await create_export(project, body)
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    (file,) = (project.files / path).iterdir()
    return file, run


async def export_now(project: Project, path: str, **fields: Any) -> list[dict[str, Any]]:
    """Create a File export, run the hour that ends now, and return the rows it wrote."""
    file, run = await export_file_now(project, path, **fields)
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    assert run["records_completed"] == len(rows)
    return rows


async def run_hour(project: Project, export: dict[str, Any], end: datetime, count: int) -> list[dict[str, Any]]:
    """Run the hour that ends at `end` and wait until the export has `count` runs, the last one ended.

    It waits for the workflow to close too: the run's row says it ended a moment before its workflow does, and
    the same interval run again at once would find its workflow id still taken."""
    handle = await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    with contextlib.suppress(WorkflowFailureError):  # a failed run: its row says how
        await handle.result()
    return await runs_until(
        project, export["id"], lambda rs: len(rs) == count and rs[-1]["status"] not in ("Starting", "Running")
    )


async def trigger_for_last_hour(project: Project, export: dict[str, Any]) -> datetime:
    """Trigger the export's schedule, which exports the last whole hour, after moving the events the project
    ingested this hour an hour back, into it; the hour's end."""
    await clear_of_the_hour()
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    await project.stack.pool.execute(
        "UPDATE events SET inserted_at = inserted_at - interval '1 hour' WHERE team_id = $1 AND inserted_at >= $2",
        project.id, hour,
    )  # fmt: skip
    temporal_cli_run("schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll",
                     address=os.environ["TEMPORAL_ADDRESS"])  # fmt: skip
    return hour
