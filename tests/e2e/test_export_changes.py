"""Changing an export changes its schedule in the same request; outside changes come back by reconciliation."""

import os
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
from temporalio.client import ScheduleRange
from temporalio.service import RPCError

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import (
    another_gateway,
    create_export,
    eventually,
    later_boundary,
    reconcile,
    runs_until,
    start_run,
    temporal_cli_run,
)
from tests.support.stack import API_KEY, Project

FILE_EXPORT = {"name": "f", "interval": "hour", "destination": {"type": "File", "config": {"path": "changes"}}}
LIVE = {**FILE_EXPORT, "paused": False}  # for the tests of the schedule itself


async def test_patch_merges_the_config_and_updates_the_schedule(project: Project) -> None:
    export = await create_export(project, LIVE)
    status, updated = await project.request(
        "PATCH",
        f"batch_exports/{export['id']}/",
        json={"interval": "day", "timezone": "Europe/Berlin", "offset_hour": 4,
              "destination": {"config": {"compression": "gzip"}}},
    )  # fmt: skip
    assert status == 200, updated
    assert updated["destination"]["config"] == {**export["destination"]["config"], "compression": "gzip"}
    assert (updated["interval"], updated["timezone"], updated["offset_hour"]) == ("day", "Europe/Berlin", 4)
    spec = (await project.stack.client.get_schedule_handle(export["id"]).describe()).schedule.spec
    assert spec.time_zone_name == "Europe/Berlin" and spec.calendars[0].hour == (ScheduleRange(4),)
    status, body = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"type": "NoOp"}}
    )
    assert status == 400 and body["attr"] == "destination__type"
    status, body = await project.request("PATCH", f"batch_exports/{export['id']}/", json={"offset_hour": 2})
    assert (status, body["offset_hour"]) == (200, 2), body  # 02:00 Berlin: a DST night's fire is handled


async def test_pause_and_unpause_move_the_schedule(project: Project) -> None:
    export = await create_export(project, LIVE)
    handle = project.stack.client.get_schedule_handle(export["id"])
    status, body = await project.request("POST", f"batch_exports/{export['id']}/pause/")
    assert (status, body) == (200, {"paused": True})
    assert (await handle.describe()).schedule.state.paused
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert seen["paused"] and seen["last_paused_at"]
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/")
    assert (status, body) == (200, {"paused": False})
    assert not (await handle.describe()).schedule.state.paused


async def test_unpause_with_backfill_exports_the_paused_gap(project: Project) -> None:
    export = await create_export(project, LIVE)
    await project.request("POST", f"batch_exports/{export['id']}/pause/")
    # Paused 20 minutes into an hour: that hour was under way, and is owed too.
    paused_at = (
        datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=3) + timedelta(minutes=20)
    )
    # Every interval before it had its run: the export was covered up to the boundary before the pause.
    await project.stack.pool.execute(
        "UPDATE batch_exports SET last_paused_at = $2, covered_until = $3 WHERE id = $1",
        uuid.UUID(export["id"]),
        paused_at,
        paused_at.replace(minute=0),
    )
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/", json={"backfill": True})
    assert status == 200 and body["paused"] is False and body["backfill_id"]
    backfill = body["backfill_id"]
    found = await runs_until(  # the live schedule may add a run of its own at the top of an hour: not counted
        project, export["id"], lambda rs: [r["status"] for r in rs if r["backfill"] == backfill] == ["Completed"] * 3
    )
    starts = sorted(r["data_interval_start"] for r in found if r["backfill"] == backfill)
    assert starts[0] == f"{paused_at.replace(minute=0):%Y-%m-%dT%H:%M:%SZ}", starts


async def test_delete_cancels_runs_and_removes_the_schedule(project: Project) -> None:
    export = await create_export(project, FILE_EXPORT)
    await start_run(project.stack, export, end=later_boundary())
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    status, _ = await project.request("DELETE", f"batch_exports/{export['id']}/")
    assert status == 204
    status, _ = await project.request("GET", f"batch_exports/{export['id']}/")
    assert status == 404
    _, listed = await project.request("GET", "batch_exports/")
    assert export["id"] not in [e["id"] for e in listed["results"]]
    try:
        await project.stack.client.get_schedule_handle(export["id"]).describe()
        raise AssertionError("the schedule should be gone")
    except RPCError:
        pass

    async def cancelled() -> bool:
        return await project.stack.pool.fetchval(  # type: ignore[no-any-return]
            "SELECT status = 'Cancelled' FROM batch_export_runs WHERE batch_export_id = $1", uuid.UUID(export["id"])
        )

    await eventually(cancelled)


async def test_changes_fail_cleanly_when_temporal_is_unreachable(project: Project) -> None:
    stack = project.stack
    export = await create_export(project, LIVE)
    dead = f"{LOOPBACK}:{free_port()}"  # nothing listens there
    step = timedelta(hours=1)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - 2 * step
    changes = [
        ("POST", "", {"name": "n", "interval": "hour", "destination": {"type": "NoOp"}}),
        ("PATCH", f"{export['id']}/", {"name": "renamed"}),
        ("POST", f"{export['id']}/pause/", None),
        ("POST", f"{export['id']}/backfills/", {"start_at": hour.isoformat(), "end_at": (hour + step).isoformat()}),
        ("DELETE", f"{export['id']}/", None),
    ]
    async with (
        another_gateway(stack, temporal_address=dead) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        for method, path, body in changes:
            url = f"{gateway}/api/projects/{project.id}/batch_exports/{path}"
            async with http.request(method, url, json=body) as response:
                error = await response.json()
            assert (response.status, error["code"]) == (503, "temporal_unavailable"), (method, path, error)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert (seen["name"], seen["paused"]) == (export["name"], False)
    assert await stack.pool.fetchval("SELECT count(*) FROM batch_exports WHERE team_id = $1", project.id) == 1
    assert await stack.pool.fetchval("SELECT count(*) FROM batch_export_backfills WHERE team_id = $1", project.id) == 0


async def test_internal_hosts_are_refused_unless_allowed(project: Project) -> None:
    async with (
        another_gateway(project.stack, allow_private_destinations=False) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        url = f"{gateway}/api/projects/{project.id}/batch_exports/"
        postgres = {"host": "127.0.0.1", "database": "d", "table_name": "t", "user": "u", "password": "p"}
        for destination, attr in [
            ({"type": "Postgres", "config": postgres}, "destination__config__host"),
            ({"type": "Postgres", "config": {**postgres, "host": "10.1.2.3"}}, "destination__config__host"),
            (
                {"type": "HTTP", "config": {"url": "http://localhost:8000/batch/", "token": "t"}},
                "destination__config__url",
            ),
        ]:
            body = {"name": "inside", "interval": "hour", "destination": destination}
            async with http.post(url, json=body) as response:
                error = await response.json()
            assert (response.status, error["attr"]) == (400, attr), error
            assert "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS" in error["detail"]


async def test_reconciliation_brings_back_outside_pauses_and_missing_schedules(project: Project) -> None:
    stack = project.stack
    export = await create_export(project, LIVE)
    address = os.environ["TEMPORAL_ADDRESS"]
    temporal_cli_run("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "maintenance",
                     address=address)  # fmt: skip
    await reconcile(stack)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert seen["paused"] and seen["last_paused_at"]
    temporal_cli_run("schedule", "toggle", "--schedule-id", export["id"], "--unpause", "--reason", "done",
                     address=address)  # fmt: skip
    await reconcile(stack)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert not seen["paused"]

    await stack.client.get_schedule_handle(export["id"]).delete()
    result = await reconcile(stack)
    assert result.recreated >= 1
    described = await stack.client.get_schedule_handle(export["id"]).describe()
    assert described.schedule.action.id == export["id"]  # type: ignore[attr-defined]
