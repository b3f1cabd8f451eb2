"""On-call, round two: what an operator types into the `temporal` CLI (a schedule edited by hand, an execution
started by hand, pauses short and long, deletes, resets) loses nothing silently, and the API answers what
Temporal holds."""

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
from temporalio.client import ScheduleActionExecutionStartWorkflow, WorkflowExecutionStatus

from batch_exports.services import reconciliation
from batch_exports.store import coverage, exports
from batch_exports.telemetry import gauges
from contracts.intervals import Interval, IntervalSpec, latest_boundary, run_workflow_id
from tests.support.helpers import (
    another_gateway,
    create_export,
    eventually,
    insert_events,
    reconcile,
    runs_until,
    start_run,
)
from tests.support.operating import cli, exported_uuids, file_export, logs_of
from tests.support.receiver import running_receiver
from tests.support.stack import API_KEY, Project

FIVE_MINUTES = timedelta(minutes=5)
FIVE = IntervalSpec(Interval.EVERY_5_MINUTES)


def hand_edit(project: Project, export_id: str, *extra: str) -> None:
    """`temporal schedule update` as the issue typed it: the workflow named, no --input (unless `extra` adds it)."""
    queue = project.stack.settings.task_queue
    cli("schedule", "update", "--schedule-id", export_id, "--workflow-id", export_id, "--task-queue", queue,
        "--type", "batch-export-run", "--interval", "1m", *extra)  # fmt: skip


async def fired_execution(project: Project, export_id: str, before: int) -> Any:
    """The execution of the schedule's next action after its first `before`, once it has closed."""
    schedule = project.stack.client.get_schedule_handle(export_id)

    async def closed() -> Any:
        actions = (await schedule.describe()).info.recent_actions
        if len(actions) <= before:
            return None
        action = actions[before].action
        assert isinstance(action, ScheduleActionExecutionStartWorkflow)
        handle = project.stack.client.get_workflow_handle(action.workflow_id)
        described = await handle.describe()
        return described if described.status != WorkflowExecutionStatus.RUNNING else None

    return await eventually(closed, within=30, every=0.5)


async def test_a_run_of_a_hand_edited_schedule_fails_at_once_and_the_schedule_is_put_back(project: Project) -> None:
    export = await create_export(project, file_export(f"edited-{project.id}", paused=False))
    await reconcile(project.stack)  # reconciliation has seen the schedule as the API made it
    inputs = {"batch_export_id": export["id"], "team_id": project.id, "spec": {"interval": "hour", "timezone": "UTC"}}
    for extra, missing in (((), "no inputs"), (("--input", json.dumps(inputs)), "no execution timeout")):
        hand_edit(project, export["id"], *extra)
        before = len((await project.stack.client.get_schedule_handle(export["id"]).describe()).info.recent_actions)
        cli("schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll")
        execution = await fired_execution(project, export["id"], before)
        assert execution.status == WorkflowExecutionStatus.FAILED
        handle = project.stack.client.get_workflow_handle(execution.id)
        history = await handle.fetch_history()
        failed = history.events[-1].workflow_execution_failed_event_attributes.failure
        assert "edited by hand" in failed.message and missing in failed.message, failed.message
        assert failed.application_failure_info.non_retryable
        assert not any(e.HasField("workflow_task_failed_event_attributes") for e in history.events)
        assert execution.run_id == (await handle.describe()).run_id  # no retry of it
        result = await reconcile(project.stack)
        assert result.resynced == 1  # put back
        described = await project.stack.client.get_schedule_handle(export["id"]).describe()
        assert described.schedule.action.execution_timeout is not None  # type: ignore[attr-defined]
    assert sum("changed outside the API" in m for m in await logs_of(project, export["id"])) == 2


async def owed_interval(project: Project, path: str) -> tuple[dict[str, Any], datetime, set[str]]:
    """A live 5-minute export whose books say the latest boundary reconciliation may fill is not covered yet, with
    events in that interval: (the export, the boundary, the events)."""
    export = await create_export(project, file_export(path, "every 5 minutes", paused=False))
    end = latest_boundary(FIVE, datetime.now(UTC) - reconciliation.GAP_GRACE - timedelta(seconds=5))
    await project.stack.pool.execute(
        "UPDATE batch_exports SET covered_until = $2 WHERE id = $1", uuid.UUID(export["id"]), end - FIVE_MINUTES
    )
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=2), end - timedelta(minutes=1)])
    return export, end, sent


async def covered_until(project: Project, export_id: str) -> datetime:
    value: datetime = await project.stack.pool.fetchval(
        "SELECT covered_until FROM batch_exports WHERE id = $1", uuid.UUID(export_id)
    )
    return value


async def test_a_refused_gap_fill_is_logged_and_not_covered_until_the_interval_has_its_run(project: Project) -> None:
    path = f"refused-{project.id}"
    export, end, sent = await owed_interval(project, path)
    workflow_id = run_workflow_id(export["id"], end)
    # The service's own execution holds the interval's id without a run of it (one waiting on a later interval).
    spec = {"interval": "every 5 minutes", "timezone": "UTC"}
    later = latest_boundary(FIVE, datetime.now(UTC)) + timedelta(hours=2)
    cli("workflow", "start", "--type", "batch-export-run", "--task-queue", project.stack.settings.task_queue,
        "--workflow-id", workflow_id, "--execution-timeout", "1h", "--input",
        json.dumps({"batch_export_id": export["id"], "team_id": project.id, "spec": spec,
                    "data_interval_start": (later - FIVE_MINUTES).isoformat(),
                    "data_interval_end": later.isoformat()}))  # fmt: skip
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    for _ in range(2):
        result = await reconcile(project.stack)
        assert result.gaps == 0
        assert await covered_until(project, export["id"]) < end  # not marked covered
    refused = [m for m in await logs_of(project, export["id"]) if "refused" in m]
    assert len(refused) == 1 and workflow_id in refused[0], refused  # said once, not every pass
    cli("workflow", "cancel", "--workflow-id", workflow_id)
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Cancelled"])
    await eventually(lambda: _closed(project, workflow_id))
    result = await reconcile(project.stack)
    assert result.gaps == 1 and await covered_until(project, export["id"]) >= end
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Cancelled", "Completed"])
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def _closed(project: Project, workflow_id: str) -> bool:
    described = await project.stack.client.get_workflow_handle(workflow_id).describe()
    return described.status != WorkflowExecutionStatus.RUNNING


async def test_an_execution_started_by_hand_holding_an_interval_is_terminated_and_the_interval_run(
    project: Project,
) -> None:
    path = f"by-hand-{project.id}"
    export, end, sent = await owed_interval(project, path)
    workflow_id = run_workflow_id(export["id"], end)
    # Inputs the run cannot even decode: its workflow task fails again and again, and it has no execution timeout.
    cli("workflow", "start", "--type", "batch-export-run", "--task-queue", project.stack.settings.task_queue,
        "--workflow-id", workflow_id, "--input", '"not a run"')  # fmt: skip
    result = await reconcile(project.stack)
    assert result.gaps == 1
    (message,) = [m for m in await logs_of(project, export["id"]) if "refused" in m]
    assert workflow_id in message and "Terminated it" in message
    (started,) = [m for m in await logs_of(project, export["id"]) if "did not start the interval" in m]
    assert "held by an execution that recorded no run" in started, started
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    assert run["workflow_id"] == workflow_id
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def test_a_backfill_waiting_on_an_interval_held_by_another_execution_runs_it_when_that_one_did_not_complete(
    project: Project,
) -> None:
    path = f"held-{project.id}"
    export = await create_export(project, file_export(path))
    end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
    workflow_id = run_workflow_id(export["id"], end)
    cli("workflow", "start", "--type", "batch-export-run", "--task-queue", project.stack.settings.task_queue,
        "--workflow-id", workflow_id, "--input", '"not a run"')  # fmt: skip
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (end - timedelta(hours=1)).isoformat(), "end_at": end.isoformat()},
    )
    assert status == 201, body
    await asyncio.sleep(3)  # the backfill waits on the execution holding the id
    cli("workflow", "terminate", "--workflow-id", workflow_id, "--reason", "stuck")

    async def done() -> dict[str, Any] | None:
        _, backfill = await project.request("GET", f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/")
        return backfill if backfill["status"] not in ("Starting", "Running") else None

    backfill = await eventually(done, within=60)
    assert backfill["status"] == "Completed"
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    assert run["records_completed"] == 1
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def paused_in_temporal(project: Project, export_id: str) -> bool:
    return (await project.stack.client.get_schedule_handle(export_id).describe()).schedule.state.paused


async def test_pause_and_unpause_answer_what_temporal_holds_after_a_cli_toggle(project: Project) -> None:
    export = await create_export(project, file_export(f"toggled-{project.id}", "every 5 minutes", paused=False))
    cli("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "incident")
    # Before reconciliation has seen the pause, the API unpauses what Temporal holds.
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/", json={"backfill": True})
    assert (status, body["paused"]) == (200, False), body
    assert not await paused_in_temporal(project, export["id"])
    await reconcile(project.stack)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert seen["paused"] is False
    # The other way round: paused through the API, unpaused in the CLI, paused through the API again.
    status, body = await project.request("POST", f"batch_exports/{export['id']}/pause/")
    assert (status, body) == (200, {"paused": True})
    cli("schedule", "toggle", "--schedule-id", export["id"], "--unpause", "--reason", "oops")
    status, body = await project.request("POST", f"batch_exports/{export['id']}/pause/")
    assert (status, body) == (200, {"paused": True}) and await paused_in_temporal(project, export["id"])
    await reconcile(project.stack)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert seen["paused"] is True


async def test_after_a_cli_unpause_an_api_unpause_with_backfill_exports_the_paused_span(project: Project) -> None:
    path = f"cli-unpaused-{project.id}"
    export = await create_export(project, file_export(path, "every 5 minutes", paused=False))
    now = datetime.now(UTC)
    ends = [latest_boundary(FIVE, now) - FIVE_MINUTES * i for i in (3, 2, 1)]
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=2) for end in ends])
    cli("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "incident")
    await reconcile(project.stack)
    await project.stack.pool.execute(  # the books as they stood when it was paused: covered up to before `ends`
        "UPDATE batch_exports SET covered_until = $2 WHERE id = $1", uuid.UUID(export["id"]), ends[0] - FIVE_MINUTES
    )
    cli("schedule", "toggle", "--schedule-id", export["id"], "--unpause", "--reason", "done")
    await reconcile(project.stack)
    (advice,) = [m for m in await logs_of(project, export["id"]) if "unpaused outside the API" in m]
    assert "with backfill" in advice
    # The log's advice works: the span the CLI unpause gave up is backfilled.
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/", json={"backfill": True})
    assert status == 200 and body["paused"] is False and body.get("backfill_id"), body

    def all_in(rs: list[dict[str, Any]]) -> bool:
        return {r["data_interval_end"] for r in rs if r["status"] == "Completed"} >= {
            f"{end:%Y-%m-%dT%H:%M:%SZ}" for end in ends
        }

    await runs_until(project, export["id"], all_in, within=60)
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def test_deleting_an_export_answers_once_its_runs_have_stopped(project: Project) -> None:
    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver:
        receiver.open.clear()  # the runs' batches hang: they are writing when the export is deleted

        async def writing() -> dict[str, Any]:
            config = {"url": receiver.url, "token": receiver.token}
            export = await create_export(
                project, {"name": "deleted", "interval": "hour", "destination": {"type": "HTTP", "config": config}}
            )
            await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
            await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Running"])
            return export

        async def statuses(export_id: str) -> list[str]:
            rows = await project.stack.pool.fetch(
                "SELECT status FROM batch_export_runs WHERE batch_export_id = $1", uuid.UUID(export_id)
            )
            return [row["status"] for row in rows]

        end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
        await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
        export = await writing()
        status, _ = await project.request("DELETE", f"batch_exports/{export['id']}/")
        assert status == 204 and await statuses(export["id"]) == ["Cancelled"]  # stopped before the answer
        # A gateway that waits no time answers 202, naming the runs still stopping.
        export = await writing()
        async with (
            another_gateway(project.stack, cancel_wait_seconds=0) as gateway,
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
            http.delete(f"{gateway}/api/projects/{project.id}/batch_exports/{export['id']}/") as response,
        ):
            body = await response.json()
        (run,) = await project.stack.pool.fetch(
            "SELECT id FROM batch_export_runs WHERE batch_export_id = $1", uuid.UUID(export["id"])
        )
        assert (response.status, body) == (202, {"deleted": True, "stopping_runs": [str(run["id"])]})

        async def stopped() -> bool:
            return await statuses(export["id"]) == ["Cancelled"]

        await eventually(stopped)


async def test_a_reset_of_a_completed_run_leaves_it_completed_and_the_new_one_names_it(project: Project) -> None:
    path = f"reset-done-{project.id}"
    export = await create_export(project, file_export(path))
    end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
    handle = await start_run(project.stack, export, start=end - timedelta(hours=1), end=end)
    await handle.result()
    (first,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    cli("workflow", "reset", "--workflow-id", handle.id, "--run-id", first["workflow_run_id"],
        "--type", "FirstWorkflowTask", "--reason", "redo")  # fmt: skip
    rows = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"] * 2)
    assert rows[0]["id"] == first["id"] and rows[1]["replaced_run"] == first["id"]  # docs/operating.md's table says so
    assert set(exported_uuids(project, path)) == sent  # the interval exported again, as the reset asked


async def test_a_deleted_schedules_missed_interval_is_run_with_that_cause(project: Project) -> None:
    path = f"deleted-schedule-{project.id}"
    export = await create_export(project, file_export(path, "every 5 minutes", paused=False))
    end = latest_boundary(FIVE, datetime.now(UTC) - reconciliation.GAP_GRACE - timedelta(seconds=5))
    await reconciliation.reconcile(project.stack.runtime, now=end - timedelta(seconds=30))  # its last look before
    cli("schedule", "delete", "--schedule-id", export["id"])
    result = await reconcile(project.stack)
    assert result.recreated == 1
    await project.stack.pool.execute(  # the books as they stood: the interval ending at `end` was not covered
        "UPDATE batch_exports SET covered_until = $2 WHERE id = $1", uuid.UUID(export["id"]), end - FIVE_MINUTES
    )
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=1)])
    result = await reconcile(project.stack)
    assert result.gaps == 1
    (message,) = [m for m in await logs_of(project, export["id"]) if "did not start the interval" in m]
    assert "deleted outside the API" in message and "DST" not in message, message
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def test_missing_intervals_count_what_has_no_completed_run_and_no_pause_gave_up(project: Project) -> None:
    stack = project.stack
    export = await create_export(project, file_export(f"missing-{project.id}", "every 5 minutes", paused=False))
    export_id = uuid.UUID(export["id"])
    now = datetime.now(UTC)
    end = latest_boundary(FIVE, now - reconciliation.GAP_GRACE - timedelta(seconds=5))
    ends = [end - FIVE_MINUTES * i for i in (3, 2, 1, 0)]
    await stack.pool.execute("UPDATE batch_exports SET owed_from = $2 WHERE id = $1", export_id, ends[0] - FIVE_MINUTES)
    await (await start_run(stack, export, start=ends[0] - FIVE_MINUTES, end=ends[0])).result()  # completed
    await coverage.forgo(stack.pool, export_id, ends[1] - FIVE_MINUTES, ends[1], "unpaused outside the API")

    async def missing() -> int:
        (fresh,) = [f for f in await exports.freshness(stack.pool) if f.id == export_id]
        return await gauges.missing_intervals(stack.runtime, fresh, now)

    assert await missing() == 2  # the last two: no run, and no pause gave them up
    await (await start_run(stack, export, start=ends[2] - FIVE_MINUTES, end=ends[2])).result()
    assert await missing() == 1
    # A pause's intervals given up one by one make one span, which an unpause with backfill takes back whole.
    for end in ends[2:]:
        await coverage.forgo(stack.pool, export_id, end - FIVE_MINUTES, end, "paused outside the API")
    assert await missing() == 0
    span = await coverage.take_back_latest(stack.pool, export_id)
    assert span is not None and (span.after, span.through) == (ends[2] - FIVE_MINUTES, ends[3])


async def test_a_short_cli_pause_across_a_boundary_is_shown_and_its_interval_given_up_as_such(
    project: Project,
) -> None:
    """Paused for seconds across a run time (up to five minutes of waiting for one), between two passes of
    reconciliation: the API shows the pause, and the interval it skipped is logged with the pause as its cause."""
    path = f"short-pause-{project.id}"
    export = await create_export(project, file_export(path, "every 5 minutes", paused=False))
    boundary = latest_boundary(FIVE, datetime.now(UTC)) + FIVE_MINUTES
    if boundary - datetime.now(UTC) < timedelta(seconds=10):
        boundary += FIVE_MINUTES
    sent = await insert_events(project.stack, project.id, [boundary - timedelta(minutes=2)])
    await asyncio.sleep((boundary - datetime.now(UTC)).total_seconds() - 4)
    paused_at = datetime.now(UTC)
    cli("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "quick fix")
    await asyncio.sleep((boundary - datetime.now(UTC)).total_seconds() + 4)
    cli("schedule", "toggle", "--schedule-id", export["id"], "--unpause", "--reason", "fixed")
    # Reconciliation's next pass, once the schedule has had its chance at the boundary.
    after_grace = boundary + reconciliation.GAP_GRACE + timedelta(seconds=1)
    await reconciliation.reconcile(project.stack.runtime, now=after_grace)
    messages = [m for m in await logs_of(project, export["id"]) if "did not start the interval" in m]
    assert len(messages) == 1 and "paused outside the API" in messages[0] and "quick fix" in messages[0], messages
    assert "DST" not in messages[0] and "Temporal down" not in messages[0]
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    recorded = datetime.fromisoformat(seen["last_paused_at"])
    assert seen["paused"] is False and abs(recorded - paused_at) < timedelta(seconds=2), seen
    assert await runs_of_interval(project, export["id"], boundary) == []  # given up, as docs/runs.md says
    # ... and taken back by an unpause with backfill, as the log says.
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/", json={"backfill": True})
    assert status == 200 and body.get("backfill_id"), body
    await runs_until(project, export["id"], lambda rs: any(r["status"] == "Completed" for r in rs), within=60)
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def runs_of_interval(project: Project, export_id: str, end: datetime) -> list[str]:
    _, page = await project.request("GET", f"batch_exports/{export_id}/runs/")
    return [r["status"] for r in page["results"] if r["data_interval_end"] == f"{end:%Y-%m-%dT%H:%M:%SZ}"]
