"""Backfills and retries: every interval of a range runs once, with the ids scheduled runs have."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowHandle

from contracts.intervals import Interval, IntervalSpec, run_workflow_id
from contracts.timeouts import execution_timeout
from contracts.workflows import RUN_WORKFLOW, RunInputs
from tests.support.helpers import create_export, eventually, insert_events, later_boundary, runs_until
from tests.support.stack import Project


def whole_hour(hours_ago: int) -> datetime:
    return datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=hours_ago)


async def file_export(project: Project, path: str, **fields: Any) -> dict[str, Any]:
    body = {"name": path, "interval": "hour", "destination": {"type": "File", "config": {"path": path}}, **fields}
    return await create_export(project, body)


async def hold_interval(project: Project, export: dict[str, Any], end: datetime) -> WorkflowHandle[Any, Any]:
    """A run holding the id of the interval that ends at `end`, kept running (it waits for a later end)."""
    return await project.stack.client.start_workflow(
        RUN_WORKFLOW,
        RunInputs(
            batch_export_id=export["id"], team_id=project.id, spec=IntervalSpec(Interval.HOUR),
            data_interval_end=later_boundary(),
        ),
        id=run_workflow_id(export["id"], end),
        task_queue=project.stack.settings.task_queue,
        execution_timeout=execution_timeout(Interval.HOUR),
    )  # fmt: skip


async def backfill_last_hour(project: Project, export: dict[str, Any], end: datetime) -> dict[str, Any]:
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (end - timedelta(hours=1)).isoformat(), "end_at": end.isoformat()},
    )
    assert status == 201, body
    return body  # type: ignore[no-any-return]


async def backfill_until_done(project: Project, export_id: str, backfill_id: str, within: float = 60) -> dict[str, Any]:
    async def done() -> dict[str, Any] | None:
        status, body = await project.request("GET", f"batch_exports/{export_id}/backfills/{backfill_id}/")
        assert status == 200, body
        return body if body["status"] not in ("Starting", "Running") else None  # type: ignore[no-any-return]

    return await eventually(done, within=within)


async def test_backfill_exports_each_interval_once_and_retry_rewrites_it(source_project: Project) -> None:
    project = source_project
    stack = project.stack
    path = f"backfill-{project.id}"
    export = await file_export(project, path)
    start = whole_hour(4)
    counts = [3, 0, 5]  # events per hour, an empty hour in the middle
    uuids: list[set[str]] = []
    for hour, count in enumerate(counts):
        at = start + timedelta(hours=hour, minutes=10)
        uuids.append(await insert_events(stack, project.id, [at + timedelta(seconds=i) for i in range(count)]))

    end = start + timedelta(hours=3)
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": start.isoformat(), "end_at": end.isoformat()},
    )
    assert status == 201, body
    backfill = await backfill_until_done(project, export["id"], body["backfill_id"])
    assert backfill["status"] == "Completed"
    assert backfill["progress"] == {"total_runs": 3, "finished_runs": 3, "progress": 1.0}
    assert backfill["total_records_count"] == sum(counts)

    found = await runs_until(project, export["id"], lambda rs: len(rs) == 3, within=5)
    found.sort(key=lambda run: run["data_interval_start"])
    assert [run["status"] for run in found] == ["Completed"] * 3
    assert [run["records_completed"] for run in found] == counts
    ends = [start + timedelta(hours=h + 1) for h in range(3)]
    assert [run["workflow_id"] for run in found] == [run_workflow_id(export["id"], e) for e in ends]
    assert {run["backfill"] for run in found} == {body["backfill_id"]}

    def exported(run: dict[str, Any]) -> list[str]:
        s, e = datetime.fromisoformat(run["data_interval_start"]), datetime.fromisoformat(run["data_interval_end"])
        file = project.files / path / f"{s:%Y-%m-%dT%H:%M:%SZ}-{e:%Y-%m-%dT%H:%M:%SZ}.jsonl"
        return [json.loads(line)["uuid"] for line in file.read_text().splitlines()]

    assert [set(exported(run)) for run in found] == uuids

    # Retrying a run exports its interval again: the file is replaced, each record still once.
    last = found[2]
    status, retried = await project.request("POST", f"batch_exports/{export['id']}/runs/{last['id']}/retry/")
    assert status == 200, retried
    await backfill_until_done(project, export["id"], retried["backfill_id"])
    again = await runs_until(project, export["id"], lambda rs: len(rs) == 4, within=5)
    assert again[-1]["workflow_id"] == last["workflow_id"] and again[-1]["status"] == "Completed"
    assert sorted(exported(last)) == sorted(uuids[2])

    status, page = await project.request("GET", f"batch_exports/{export['id']}/backfills/")
    assert status == 200 and {b["id"] for b in page["results"]} == {body["backfill_id"], retried["backfill_id"]}


async def test_a_backfill_waits_for_an_interval_that_is_already_running_and_runs_it_if_that_did_not_complete(
    project: Project,
) -> None:
    export = await file_export(project, f"waits-{project.id}")
    end = whole_hour(1)
    # A run holding the id of the interval ending at `end`, still running (it waits for a later end).
    holder = await hold_interval(project, export, end)
    body = await backfill_last_hour(project, export, end)
    backfill_path = f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/"

    async def running() -> bool:
        _, backfill = await project.request("GET", backfill_path)
        return backfill["status"] == "Running"  # type: ignore[no-any-return]

    await eventually(running)
    found = await runs_until(project, export["id"], lambda rs: len(rs) >= 1, within=5)
    assert len(found) == 1 and found[0]["backfill"] is None  # no twin was started
    await holder.cancel()  # it did not complete: the backfill runs the interval itself, once
    backfill = await backfill_until_done(project, export["id"], body["backfill_id"])
    assert backfill["status"] == "Completed"
    rows = await runs_until(project, export["id"], lambda rs: True)
    assert [(r["status"], r["backfill"]) for r in rows] == [("Cancelled", None), ("Completed", body["backfill_id"])]


async def test_cancelling_a_backfill(project: Project) -> None:
    export = await file_export(project, f"cancel-backfill-{project.id}")
    end = whole_hour(1)
    # The backfill's only interval is already running, so the backfill keeps waiting until cancelled.
    holder = await hold_interval(project, export, end)
    body = await backfill_last_hour(project, export, end)
    path = f"batch_exports/{export['id']}/backfills/{body['backfill_id']}/"
    status, cancelled = await project.request("POST", path + "cancel/")
    assert (status, cancelled) == (200, {"cancelled": True})
    backfill = await backfill_until_done(project, export["id"], body["backfill_id"])
    assert backfill["status"] == "Cancelled"
    status, again = await project.request("POST", path + "cancel/")
    assert status == 400 and "Cancelled" in again["detail"]
    await holder.cancel()


async def test_backfill_bounds_are_validated(project: Project) -> None:
    export = await file_export(project, f"bounds-{project.id}")
    path = f"batch_exports/{export['id']}/backfills/"
    now = datetime.now(UTC)
    cases = [
        ({"start_at": (now - timedelta(hours=2)).isoformat(), "end_at": (now + timedelta(hours=2)).isoformat()},
         "end_at", "future"),
        ({"start_at": now.isoformat(), "end_at": (now - timedelta(hours=2)).isoformat()}, "end_at", "after start_at"),
        ({"start_at": "yesterday", "end_at": now.isoformat()}, "start_at", "ISO 8601"),
        ({"end_at": now.isoformat()}, "start_at", "required"),
        ({"start_at": "2024-01-01T00:00:00", "end_at": now.isoformat()}, "start_at", "offset"),
        ({"start_at": "2024-01-01T00:10:00Z", "end_at": "2024-01-01T00:50:00Z"}, "start_at", "no whole hour"),
        ({"start_at": "2024-01-01", "end_at": "2024-01-02"}, "start_at", "daily and weekly"),
    ]  # fmt: skip
    for body, attr, says in cases:
        status, error = await project.request("POST", path, json=body)
        assert (status, error["attr"]) == (400, attr), (body, error)
        assert says in error["detail"], error
    assert (
        await project.stack.pool.fetchval(
            "SELECT count(*) FROM batch_export_backfills WHERE batch_export_id = $1", uuid.UUID(export["id"])
        )
        == 0
    )


async def test_daily_backfills_take_dates_in_the_export_timezone(project: Project) -> None:
    export = await create_export(
        project,
        {"name": "daily", "interval": "day", "timezone": "Europe/Berlin", "offset_hour": 4,
         "destination": {"type": "NoOp"}},
    )  # fmt: skip
    status, body = await project.request(
        "POST", f"batch_exports/{export['id']}/backfills/", json={"start_at": "2024-03-30", "end_at": "2024-04-01"}
    )
    assert status == 201, body
    backfill = await backfill_until_done(project, export["id"], body["backfill_id"])
    assert backfill["start_at"] == "2024-03-30T03:00:00Z"  # 04:00 in Berlin, winter time
    assert backfill["progress"]["total_runs"] == 2
    found = await runs_until(project, export["id"], lambda rs: len(rs) == 2, within=5)
    spans = sorted((run["data_interval_start"], run["data_interval_end"]) for run in found)
    # The night the clocks spring forward makes the second day 23 hours long.
    assert spans == [("2024-03-30T03:00:00Z", "2024-03-31T02:00:00Z"), ("2024-03-31T02:00:00Z", "2024-04-01T02:00:00Z")]


async def test_too_many_running_backfills_is_429(project: Project) -> None:
    export = await file_export(project, f"limit-{project.id}")
    for _ in range(project.stack.settings.max_running_backfills_per_project):
        await project.stack.pool.execute(
            "INSERT INTO batch_export_backfills (id, team_id, batch_export_id, status) VALUES ($1, $2, $3, 'Running')",
            uuid.uuid4(),
            project.id,
            uuid.UUID(export["id"]),
        )
    end = whole_hour(1)
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (end - timedelta(hours=1)).isoformat(), "end_at": end.isoformat()},
    )
    assert status == 429 and "cancel one" in body["detail"]


async def test_the_deprecated_backfill_route_still_works(project: Project) -> None:
    export = await file_export(project, f"deprecated-{project.id}")
    end = whole_hour(1)
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfill/",
        json={"start_at": (end - timedelta(hours=2)).isoformat(), "end_at": end.isoformat()},
    )
    assert status == 200 and set(body) == {"backfill_id"}
    backfill = await backfill_until_done(project, export["id"], body["backfill_id"])
    assert (backfill["status"], backfill["progress"]["total_runs"]) == ("Completed", 2)
