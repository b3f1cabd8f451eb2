"""What on-call engineers do in the Temporal UI and CLI, done as they do it (the `temporal` CLI against the real
server), then read back through the API: nothing lost, nothing written twice, and the API says what Temporal says."""

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.client import ScheduleUpdate, ScheduleUpdateInput, WorkflowExecutionStatus

from batch_exports.temporal.schedules import RECONCILE_WORKFLOW_ID, ensure_reconciliation
from contracts.intervals import Interval, IntervalSpec, boundaries, latest_boundary, run_workflow_id
from contracts.search_attributes import BATCH_EXPORT_ID, BATCH_EXPORT_NAME, TEAM_ID
from tests.support.helpers import (
    clear_of_the_hour,
    create_export,
    eventually,
    insert_events,
    later_boundary,
    reconcile,
    runs_until,
    start_run,
)
from tests.support.operating import cli, exported_uuids, file_export, logs_of
from tests.support.receiver import running_receiver
from tests.support.stack import Project

FIVE_MINUTES = timedelta(minutes=5)


async def test_a_cli_pause_is_recorded_at_temporals_time_with_its_note(project: Project) -> None:
    export = await create_export(project, file_export(f"cli-pause-{project.id}", paused=False))
    paused_at = datetime.now(UTC)
    cli("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "db maintenance",
        "--identity", "alice@ops")  # fmt: skip
    await asyncio.sleep(2.5)  # reconciliation comes later than the pause: the export must not take its own time
    await reconcile(project.stack)
    _, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    recorded = datetime.fromisoformat(seen["last_paused_at"])
    assert seen["paused"] and paused_at - timedelta(seconds=1) <= recorded <= paused_at + timedelta(seconds=1.5)
    (message,) = [m for m in await logs_of(project, export["id"]) if "paused outside the API" in m]
    assert "db maintenance" in message and "alice@ops" in message


async def test_unpause_with_backfill_runs_each_interval_the_pause_skipped_once(project: Project) -> None:
    path = f"cli-gap-{project.id}"
    export = await create_export(project, file_export(path, "every 5 minutes", paused=False))
    spec = IntervalSpec(Interval.EVERY_5_MINUTES)
    now = datetime.now(UTC)
    ends = list(boundaries(spec, now - 6 * FIVE_MINUTES, now))[-6:]
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=2) for end in ends])
    # The two oldest intervals were exported before the pause...
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (ends[0] - FIVE_MINUTES).isoformat(), "end_at": ends[1].isoformat()},
    )
    assert status == 201, body
    await runs_until(project, export["id"], lambda rs: sum(r["status"] == "Completed" for r in rs) >= 2, within=60)
    # ... then an operator paused it in the CLI, and it stayed paused while the later intervals ended.
    cli("schedule", "toggle", "--schedule-id", export["id"], "--pause", "--reason", "incident")
    await reconcile(project.stack)
    await project.stack.pool.execute(  # the books as they stood: every interval up to the second one had a run
        "UPDATE batch_exports SET covered_until = $2 WHERE id = $1", uuid.UUID(export["id"]), ends[1]
    )
    status, body = await project.request("POST", f"batch_exports/{export['id']}/unpause/", json={"backfill": True})
    assert status == 200 and body["backfill_id"], body

    def all_in(rs: list[dict[str, Any]]) -> bool:
        return {r["data_interval_end"] for r in rs if r["status"] == "Completed"} >= {
            f"{end:%Y-%m-%dT%H:%M:%SZ}" for end in ends
        }

    found = await runs_until(project, export["id"], all_in, within=90)

    async def backfill_done() -> dict[str, Any] | None:
        _, backfill = await project.request("GET", f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/")
        return backfill if backfill["status"] == "Completed" else None

    per_interval = [r["data_interval_end"] for r in found if r["data_interval_end"] <= f"{ends[-1]:%Y-%m-%dT%H:%M:%SZ}"]
    assert sorted(per_interval) == sorted(set(per_interval)), per_interval  # no interval ran twice
    assert sorted(exported_uuids(project, path)) == sorted(sent)  # none missing, none twice
    backfill = await eventually(backfill_done)  # its runs are in before it counts them and closes
    assert backfill["progress"]["finished_runs"] == backfill["progress"]["total_runs"], backfill


async def test_a_trigger_exports_the_last_whole_interval_once_whoever_comes_first(project: Project) -> None:
    path = f"trigger-{project.id}"
    await clear_of_the_hour(margin=timedelta(minutes=2))  # both triggers below export the hour that ends at `end`
    export = await create_export(project, file_export(path, paused=False))
    end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC) - timedelta(seconds=5))
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=m) for m in (10, 20, 30)])
    # The schedule's run of the interval first, then an operator's trigger: the trigger exports nothing again.
    await start_run(project.stack, export, end=end)
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    cli("schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll")

    async def handed_over() -> list[str]:
        return [m for m in await logs_of(project, export["id"]) if "between boundaries" in m]

    (message,) = await eventually(handed_over)
    assert "already has a run" in message
    # The other order, for the interval before: the trigger hands it to its own id, the late fire adds nothing.
    status, _ = await project.request("DELETE", f"batch_exports/{export['id']}/")
    assert status == 204
    export = await create_export(project, file_export(f"{path}-2", paused=False))
    cli("schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll")
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    assert run["workflow_id"] == run_workflow_id(export["id"], end) and run["records_completed"] == 3
    handle = await start_run(project.stack, export, end=end)  # the schedule's fire, late: nothing again
    assert "already has a run" in (await handle.result())["note"]
    _, page = await project.request("GET", f"batch_exports/{export['id']}/runs/")
    assert [r["status"] for r in page["results"] if r["data_interval_end"] == run["data_interval_end"]] == ["Completed"]
    assert sorted(exported_uuids(project, f"{path}-2")) == sorted(sent)
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def test_cancelling_a_backfill_whose_runs_fail_leaves_nothing_running(project: Project) -> None:
    stack = project.stack
    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver:
        receiver.answer = 503  # every export attempt fails and is retried: runs are FailedRetryable, then again
        config = {"url": receiver.url, "token": receiver.token}
        export = await create_export(
            project, {"name": "failing", "interval": "hour", "destination": {"type": "HTTP", "config": config}}
        )
        now = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
        await insert_events(stack, project.id, [now - timedelta(hours=h, minutes=30) for h in range(1, 4)])
        status, body = await project.request(
            "POST",
            f"batch_exports/{export['id']}/backfills/",
            json={"start_at": (now - timedelta(hours=3)).isoformat(), "end_at": now.isoformat()},
        )
        assert status == 201, body
        await runs_until(project, export["id"], lambda rs: any(r["status"] == "FailedRetryable" for r in rs), within=60)
        status, cancelled = await project.request(
            "POST", f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/cancel/"
        )
        assert (status, cancelled) == (200, {"cancelled": True}), cancelled
        cancelled_at = datetime.now(UTC)
        _, backfill = await project.request("GET", f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/")
        assert backfill["status"] == "Cancelled"

        async def all_closed() -> list[dict[str, Any]] | None:
            _, page = await project.request("GET", f"batch_exports/{export['id']}/runs/")
            found: list[dict[str, Any]] = page["results"]
            return None if {"Starting", "Running"} & {r["status"] for r in found} else found

        await eventually(all_closed, within=5)
        await asyncio.sleep(4)  # past the runs' retry delay: a run that was not really stopped would go on
        found = await eventually(all_closed, within=5)
        late = [r for r in found if datetime.fromisoformat(r["created_at"]) > cancelled_at]
        assert {r["status"] for r in late} <= {"Cancelled"}, late  # nothing exported after the cancel
        listing = cli("workflow", "list", "--query", f"BatchExportId='{export['id']}' AND ExecutionStatus='Running'")
        assert export["id"] not in listing, listing
        # What the cancel stopped ended Cancelled (or, between two attempts, never started again): no run failed
        # for good after it, so nothing counts toward auto-pause that an operator stopped.
        statuses = await project.stack.pool.fetch(
            "SELECT status, finished_at FROM batch_export_runs WHERE batch_export_id = $1", uuid.UUID(export["id"])
        )
        assert not [row for row in statuses if row["status"] == "Failed" and row["finished_at"] > cancelled_at]


async def test_a_reset_run_names_the_run_it_replaced(project: Project) -> None:
    export = await create_export(project, file_export(f"reset-{project.id}"))
    handle = await start_run(project.stack, export, end=later_boundary())  # waits for its interval to end
    (first,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    cli("workflow", "reset", "--workflow-id", handle.id, "--type", "FirstWorkflowTask", "--reason", "redo")

    async def replaced() -> list[dict[str, Any]] | None:  # the list (not only the run's page) agrees with Temporal
        _, page = await project.request("GET", f"batch_exports/{export['id']}/runs/")
        old = [r for r in page["results"] if r["id"] == first["id"]]
        return page["results"] if len(page["results"]) == 2 and old[0]["status"] == "Terminated" else None

    rows = await eventually(replaced, within=10)
    newer = next(r for r in rows if r["id"] != first["id"])
    assert newer["replaced_run"] == first["id"] and newer["status"] == "Starting"
    await handle.cancel()


async def test_a_schedule_changed_outside_the_api_is_put_back(project: Project) -> None:
    export = await create_export(project, file_export(f"drift-{project.id}", paused=False))
    status, _ = await project.request("PATCH", f"batch_exports/{export['id']}/", json={"name": "drift, renamed"})
    assert status == 200
    await reconcile(project.stack)  # a change made through the API is not a drift
    assert not any("put back" in m for m in await logs_of(project, export["id"]))
    handle = project.stack.client.get_schedule_handle(export["id"])
    original = (await handle.describe()).schedule

    def tamper(described: ScheduleUpdateInput) -> ScheduleUpdate:
        schedule = described.description.schedule
        schedule.action.execution_timeout = timedelta(minutes=1)  # type: ignore[attr-defined]
        schedule.spec.jitter = timedelta(minutes=7)
        return ScheduleUpdate(schedule=schedule)

    await handle.update(tamper)
    result = await reconcile(project.stack)
    assert result.resynced >= 1
    restored = (await handle.describe()).schedule
    assert restored.action.execution_timeout == original.action.execution_timeout  # type: ignore[attr-defined]
    assert restored.spec.jitter == original.spec.jitter
    assert any("changed outside the API" in m for m in await logs_of(project, export["id"]))


async def test_schedules_carry_a_memo_and_search_attributes_operators_query(project: Project) -> None:
    export = await create_export(project, file_export(f"memo-{project.id}"))
    described = await project.stack.client.get_schedule_handle(export["id"]).describe()
    assert await described.memo() == {
        "name": export["name"], "team_id": project.id, "destination_type": "File", "interval": "hour",
        "timezone": "UTC",
    }  # fmt: skip
    attributes = described.typed_search_attributes
    assert (attributes.get(BATCH_EXPORT_ID), attributes.get(TEAM_ID)) == (export["id"], project.id)
    assert attributes.get(BATCH_EXPORT_NAME) == export["name"]

    async def listed() -> bool:
        return export["id"] in cli("schedule", "list", "--query", f"BatchExportName='{export['name']}'")

    await eventually(listed)


async def test_a_cli_schedule_backfill_shows_among_the_backfills_with_its_progress(project: Project) -> None:
    path = f"cli-backfill-{project.id}"
    export = await create_export(project, file_export(path, paused=False))
    end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC)) - timedelta(hours=1)
    start = end - timedelta(hours=2)
    sent = await insert_events(project.stack, project.id, [end - timedelta(minutes=30 + 60 * h) for h in range(3)])
    cli("schedule", "backfill", "--schedule-id", export["id"], "--start-time", start.isoformat(),
        "--end-time", end.isoformat(), "--overlap-policy", "AllowAll")  # fmt: skip
    await runs_until(project, export["id"], lambda rs: sum(r["status"] == "Completed" for r in rs) >= 3, within=60)

    async def shown() -> dict[str, Any] | None:
        await reconcile(project.stack)
        _, page = await project.request("GET", f"batch_exports/{export['id']}/backfills/")
        done = [b for b in page["results"] if b["status"] == "Completed"]
        return done[0] if done else None

    backfill = await eventually(shown, within=30, every=1)
    assert backfill["progress"] == {"total_runs": 3, "finished_runs": 3, "progress": 1.0}
    assert sorted(exported_uuids(project, path)) == sorted(sent)


async def test_runs_and_backfills_show_their_details_and_the_destinations_own_failure(project: Project) -> None:
    stack = project.stack
    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver:
        config = {"url": receiver.url, "token": "phc_not_the_token"}  # the receiver answers 401
        export = await create_export(
            project, {"name": "details", "interval": "hour", "destination": {"type": "HTTP", "config": config}}
        )
        end = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
        await insert_events(stack, project.id, [end - timedelta(minutes=30)])
        handle = await start_run(stack, export, start=end - timedelta(hours=1), end=end)
        await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Failed"])
        described = await handle.describe()
        assert described.status == WorkflowExecutionStatus.FAILED
        history = await handle.fetch_history()
        failure = history.events[-1].workflow_execution_failed_event_attributes.failure
        assert "answered 401" in failure.message, failure.message  # not "Activity task failed"
        metadata = await handle.query("__temporal_workflow_metadata", result_type=WorkflowMetadata)
        assert "answered 401" in metadata.current_details


async def test_an_api_cancel_tells_temporal_who_and_why(project: Project) -> None:
    export = await create_export(project, file_export(f"who-{project.id}"))
    handle = await start_run(project.stack, export, end=later_boundary())
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    status, _ = await project.request("POST", f"batch_exports/{export['id']}/runs/{run['id']}/cancel/")
    assert status == 200
    requested = [
        event.workflow_execution_cancel_requested_event_attributes
        for event in (await handle.fetch_history()).events
        if event.HasField("workflow_execution_cancel_requested_event_attributes")
    ]
    assert requested and requested[0].identity.startswith("batch-exports-test-stack@")
    assert f"runs/{run['id']}/cancel/" in requested[0].cause


async def test_reconciliation_is_one_workflow_however_often_the_worker_starts(project: Project) -> None:
    stack = project.stack
    settings = stack.settings.model_copy(update={"reconcile_every_seconds": 3600})
    await ensure_reconciliation(stack.client, settings)
    await ensure_reconciliation(stack.client, settings)  # a second worker, a restart
    try:

        async def listed() -> list[str] | None:
            ids = [w.run_id async for w in stack.client.list_workflows(f"WorkflowId = '{RECONCILE_WORKFLOW_ID}'")]
            return ids or None

        assert len(await eventually(listed)) == 1
        described = await stack.client.get_workflow_handle(RECONCILE_WORKFLOW_ID).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
    finally:
        await stack.client.get_workflow_handle(RECONCILE_WORKFLOW_ID).terminate("test over")


async def test_a_backfill_cancelled_in_the_cli_counts_its_runs_as_they_are(project: Project) -> None:
    stack = project.stack
    async with running_receiver(f"phc_{uuid.uuid4().hex}") as receiver:
        receiver.open.clear()  # the runs' batches hang: they are under way when the operator cancels
        config = {"url": receiver.url, "token": receiver.token}
        export = await create_export(
            project, {"name": "progress", "interval": "hour", "destination": {"type": "HTTP", "config": config}}
        )
        now = latest_boundary(IntervalSpec(Interval.HOUR), datetime.now(UTC))
        await insert_events(stack, project.id, [now - timedelta(hours=h, minutes=30) for h in range(6)])
        status, body = await project.request(
            "POST",
            f"batch_exports/{export['id']}/backfills/",
            json={"start_at": (now - timedelta(hours=6)).isoformat(), "end_at": now.isoformat()},
        )
        assert status == 201, body
        concurrency = stack.settings.backfill_concurrency
        await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Running"] * concurrency)
        cli("workflow", "cancel", "--workflow-id", f"{export['id']}-backfill-{body['backfill_id']}")

        async def cancelled() -> dict[str, Any] | None:
            _, backfill = await project.request("GET", f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/")
            return backfill if backfill["status"] == "Cancelled" else None

        backfill = await eventually(cancelled)
    assert backfill["progress"]["total_runs"] == 6
    assert backfill["progress"]["finished_runs"] == concurrency  # the runs it had started, all Cancelled
    _, page = await project.request("GET", f"batch_exports/{export['id']}/runs/")
    assert [r["status"] for r in page["results"]] == ["Cancelled"] * concurrency
