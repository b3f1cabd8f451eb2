"""Every run status, reached the way SPEC section 2 says, against the real Temporal and PostgreSQL."""

import asyncio
import json
import os
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle

from tests.support.helpers import (
    create_export,
    event,
    eventually,
    later_boundary,
    reconcile,
    runs_until,
    start_run,
    temporal_cli_run,
)
from tests.support.stack import Project

NOOP = {"name": "noop", "interval": "hour", "destination": {"type": "NoOp"}}


def statuses(found: list[dict[str, Any]]) -> list[str]:
    return [run["status"] for run in found]


def has_failed(count: int) -> Callable[[list[dict[str, Any]]], bool]:
    """At least `count` runs, all Failed: a live schedule may add a (failing) run of its own at the top of an hour."""
    return lambda found: len(found) >= count and set(statuses(found)) == {"Failed"}


def closed_as(handle: WorkflowHandle[Any, Any], status: WorkflowExecutionStatus) -> Callable[[], Awaitable[bool]]:
    """A probe: has the execution closed with `status`? (Its row is written just before it closes.)"""

    async def probe() -> bool:
        return (await handle.describe()).status == status

    return probe


def hour_ago() -> tuple[datetime, datetime]:
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    return end - timedelta(hours=1), end


async def test_cancel_through_the_api(project: Project) -> None:
    export = await create_export(project, NOOP)
    # A run whose interval has not ended yet waits for it: it stays Starting until cancelled.
    handle = await start_run(project.stack, export, end=later_boundary())
    (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Starting"])
    status, body = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert (status, body) == (200, {"cancelled": True})
    (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Cancelled"])
    assert run["finished_at"] is not None
    await eventually(closed_as(handle, WorkflowExecutionStatus.CANCELED))
    status, body = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert status == 400 and "Cancelled" in body["detail"]


async def test_cancel_through_the_cli(project: Project) -> None:
    export = await create_export(project, NOOP)
    handle = await start_run(project.stack, export, end=later_boundary())
    await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Starting"])
    temporal_cli_run("workflow", "cancel", "--workflow-id", handle.id, address=os.environ["TEMPORAL_ADDRESS"])
    await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Cancelled"])


async def test_terminate_is_recorded_when_the_run_is_read(project: Project) -> None:
    export = await create_export(project, NOOP)
    handle = await start_run(project.stack, export, end=later_boundary())
    (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Starting"])
    temporal_cli_run(
        "workflow", "terminate", "--workflow-id", handle.id, "--reason", "test", address=os.environ["TEMPORAL_ADDRESS"]
    )
    # Cancelling it now says it has ended, and how, rather than failing.
    status, body = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert status == 400 and "Terminated" in body["detail"], body

    async def reconciled_on_read() -> dict[str, Any] | None:
        _, body = await project.request("GET", f"batch_exports/{export['id']}/runs/{run['id']}/")
        return body if body["status"] == "Terminated" else None  # type: ignore[no-any-return]

    body = await eventually(reconciled_on_read)
    assert "reconciliation" in body["latest_error"]


async def test_execution_timeout_is_recorded_by_reconciliation(project: Project) -> None:
    export = await create_export(project, NOOP)
    handle = await start_run(project.stack, export, end=later_boundary(), execution_timeout=timedelta(seconds=2))
    await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Starting"])
    await eventually(closed_as(handle, WorkflowExecutionStatus.TIMED_OUT))

    async def reconciled() -> list[dict[str, Any]] | None:
        await reconcile(project.stack)
        found = await runs_until(project, export["id"], lambda rs: True)
        return found if statuses(found) == ["TimedOut"] else None

    await eventually(reconciled)


async def test_a_failing_destination_is_retried_then_fails(project: Project) -> None:
    stack = project.stack
    export = await create_export(
        project, {**NOOP, "destination": {"type": "File", "config": {"path": f"broken-{project.id}"}}}
    )
    start, end = hour_ago()
    # The interval's file name is taken by a directory: writing it fails until someone removes it.
    target = project.files / f"broken-{project.id}" / f"{start:%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}.jsonl"
    target.mkdir(parents=True)
    handle = await start_run(stack, export, start=start, end=end)
    found = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["FailedRetryable", "Failed"])
    assert all("directory" in run["latest_error"].lower() for run in found), found
    assert len({run["workflow_run_id"] for run in found}) == 2  # two executions, one row each
    assert {run["workflow_id"] for run in found} == {handle.id}


async def test_a_user_error_fails_at_once_without_retries(project: Project) -> None:
    stack = project.stack
    (project.files / f"blocker-{project.id}").parent.mkdir(parents=True, exist_ok=True)
    (project.files / f"blocker-{project.id}").write_text("a file where a directory should be")
    export = await create_export(
        project, {**NOOP, "destination": {"type": "File", "config": {"path": f"blocker-{project.id}/out"}}}
    )
    start, end = hour_ago()
    handle = await start_run(stack, export, start=start, end=end)
    (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Failed"])
    assert "cannot write to" in run["latest_error"]
    await eventually(closed_as(handle, WorkflowExecutionStatus.FAILED))
    history = await handle.fetch_history()
    attempts = [e for e in history.events if e.HasField("activity_task_started_event_attributes")]
    assert len(attempts) == 1


async def test_a_long_interval_continues_as_new_from_its_cursor(project: Project) -> None:
    stack = project.stack
    export = await create_export(
        project, {**NOOP, "destination": {"type": "File", "config": {"path": f"can-{project.id}"}}}
    )
    batch = [event("e", f"user-{i}") for i in range(250)]
    status, _ = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": batch})
    assert status == 200
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=2)
    await start_run(stack, export, start=end - timedelta(hours=1), end=end)
    found = await runs_until(
        project, export["id"], lambda rs: statuses(rs) == ["ContinuedAsNew", "ContinuedAsNew", "Completed"]
    )
    assert [run["records_completed"] for run in found] == [100, 100, 50]  # the limit in tests is 100
    assert found[0]["cursor"] and found[1]["cursor"] and found[0]["cursor"] != found[1]["cursor"]
    directory = project.files / f"can-{project.id}"
    files = sorted(directory.iterdir())
    stem = f"{end - timedelta(hours=1):%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}"
    assert {f.name for f in files} == {f"{stem}.jsonl", f"{stem}-1.jsonl", f"{stem}-2.jsonl"}
    exported = [json.loads(line)["uuid"] for f in files for line in f.read_text().splitlines()]
    stored = {str(r["uuid"]) for r in await stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)}
    assert len(exported) == 250 and set(exported) == stored  # nothing skipped, nothing twice


async def test_repeated_failures_pause_the_export(project: Project) -> None:
    stack = project.stack
    project.files.mkdir(parents=True, exist_ok=True)
    (project.files / f"pauser-{project.id}").write_text("not a directory")
    export = await create_export(  # live: it is the schedule that gets paused
        project,
        {**NOOP, "paused": False, "destination": {"type": "File", "config": {"path": f"pauser-{project.id}/x"}}},
    )
    _, end = hour_ago()
    for failed, hours in enumerate((3, 2, 1), start=1):
        await start_run(stack, export, start=end - timedelta(hours=hours), end=end - timedelta(hours=hours - 1))
        await runs_until(project, export["id"], has_failed(failed))

    async def paused() -> dict[str, Any] | None:
        _, body = await project.request("GET", f"batch_exports/{export['id']}/")
        return body if body["paused"] else None  # type: ignore[no-any-return]

    body = await eventually(paused)
    assert body["last_paused_at"] is not None
    described = await stack.client.get_schedule_handle(export["id"]).describe()
    assert described.schedule.state.paused and "auto-paused" in (described.schedule.state.note or "")
    message = await stack.pool.fetchval(
        "SELECT message FROM batch_export_logs WHERE batch_export_id = $1 AND level = 'WARNING'",
        uuid.UUID(export["id"]),
    )
    assert "Paused automatically" in message


async def test_cancel_reaches_an_export_that_is_blocked_mid_read(project: Project) -> None:
    """The export heartbeats while it waits on its source, so a cancel stops it within seconds."""
    stack = project.stack
    export = await create_export(project, NOOP)
    start, end = hour_ago()
    async with stack.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE events IN ACCESS EXCLUSIVE MODE")  # the source read now waits

        async def waiting() -> set[tuple[int, datetime, str]]:
            """The statements waiting on a lock: this run's read, and what other tests on this PostgreSQL read
            meanwhile (the lock holds them too). A statement is its server process and when it started."""
            sql = """SELECT pid, query_start, left(query, 200) AS query FROM pg_stat_activity
                     WHERE wait_event_type = 'Lock' AND pid <> pg_backend_pid()"""
            return {(row["pid"], row["query_start"], row["query"]) for row in await conn.fetch(sql)}

        handle = await start_run(stack, export, start=start, end=end)
        (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Running"])
        blocked = await eventually(waiting, within=10)  # this run's read among them: what the cancel must reach
        cancelled_at = asyncio.get_running_loop().time()
        status, _ = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
        assert status == 200
        (run,) = await runs_until(project, export["id"], lambda rs: statuses(rs) == ["Cancelled"], within=15)
        assert asyncio.get_running_loop().time() - cancelled_at < 10

        async def reader_gone() -> bool:  # its statement was cancelled too, not left waiting on the lock
            return bool(blocked - await waiting())  # others' reads stay held by the lock until it is released

        try:
            await eventually(reader_gone, within=10)
        except AssertionError:
            raise AssertionError(f"still waiting on the lock: {await waiting()}") from None
    await eventually(closed_as(handle, WorkflowExecutionStatus.CANCELED))
