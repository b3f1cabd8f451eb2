"""End to end through HTTP and the `temporal` CLI: capture events, create an export, trigger its
schedule, and find a Completed run of the last whole hour whose file holds exactly that hour's events."""

import json
import os
from datetime import UTC, datetime, timedelta
from typing import Any

from contracts.search_attributes import BATCH_EXPORT_ID, DESTINATION_TYPE, TEAM_ID
from tests.support.helpers import clear_of_the_hour, event, eventually, temporal_cli_run
from tests.support.stack import Project


async def create_file_export(project: Project, path: str, **overrides: Any) -> dict[str, Any]:
    body = {
        "name": f"export to {path}",
        "interval": "hour",
        "destination": {"type": "File", "config": {"path": path, "file_format": "JSONLines"}},
        **overrides,
    }
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201, export
    return export  # type: ignore[no-any-return]


async def test_capture_export_trigger_and_complete(project: Project) -> None:
    stack = project.stack
    events = [
        event("$pageview", f"user-{i}", **{"$current_url": f"https://example.com/{i}", "n": i}) for i in range(25)
    ]
    events[0]["properties"]["$set"] = {"email": "first@example.com"}
    status, body = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": events})
    assert (status, body) == (200, {"status": 1})
    uuids = {
        str(row["uuid"]) for row in await stack.pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)
    }

    export = await create_file_export(project, "skeleton")
    status, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert status == 200 and seen["name"] == export["name"] and seen["latest_runs"] == []
    status, listed = await project.request("GET", "batch_exports/")
    assert status == 200 and export["id"] in [e["id"] for e in listed["results"]]

    # The schedule exists, as an operator sees it, with the export's search attributes.
    described = temporal_cli_run(
        "schedule", "describe", "--schedule-id", export["id"], address=os.environ["TEMPORAL_ADDRESS"]
    )
    assert "batch-export-run" in described
    description = await stack.client.get_schedule_handle(export["id"]).describe()
    attributes = description.schedule.action.typed_search_attributes  # type: ignore[attr-defined]
    assert attributes.get(BATCH_EXPORT_ID) == export["id"]
    assert attributes.get(TEAM_ID) == project.id
    assert attributes.get(DESTINATION_TYPE) == "File"

    # A trigger exports the last whole interval (the hour that ended last): the events arrived in it.
    await clear_of_the_hour()
    last_hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(minutes=30)
    await stack.pool.execute("UPDATE events SET inserted_at = $2 WHERE team_id = $1", project.id, last_hour)
    temporal_cli_run(
        "schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll",
        address=os.environ["TEMPORAL_ADDRESS"],
    )  # fmt: skip

    async def completed_run() -> dict[str, Any] | None:
        _, page = await project.request("GET", f"batch_exports/{export['id']}/runs/")
        finished = [run for run in page["results"] if run["status"] not in ("Starting", "Running")]
        return finished[0] if finished else None

    run = await eventually(completed_run)
    assert run["status"] == "Completed", run
    assert run["records_completed"] == len(uuids) == 25
    assert run["workflow_id"] == f"{export['id']}-{run['data_interval_end'].replace('.000', '')}"
    start = datetime.fromisoformat(run["data_interval_start"])
    end = datetime.fromisoformat(run["data_interval_end"])
    assert (end - start).total_seconds() == 3600 and end <= datetime.now(UTC)
    assert end == last_hour.replace(minute=0) + timedelta(hours=1)  # the clock hour, not the hour before the trigger

    file = project.files / "skeleton" / f"{start:%Y-%m-%dT%H:%M:%SZ}-{end:%Y-%m-%dT%H:%M:%SZ}.jsonl"
    rows = [json.loads(line) for line in file.read_text().splitlines()]
    assert {row["uuid"] for row in rows} == uuids
    first = next(row for row in rows if row["distinct_id"] == "user-0")
    assert first["person_properties"] == {"email": "first@example.com"}
    assert set(first) == {
        "uuid", "event", "properties", "distinct_id", "person_id", "person_properties", "timestamp",
        "created_at", "elements_chain", "_inserted_at",
    }  # fmt: skip

    status, single = await project.request("GET", f"batch_exports/{export['id']}/runs/{run['id']}/")
    assert status == 200 and single == run
    status, seen = await project.request("GET", f"batch_exports/{export['id']}/")
    assert [r["id"] for r in seen["latest_runs"]] == [run["id"]]

    # The run workflow carries the interval as search attributes an operator can query.
    async def in_visibility() -> bool:  # visibility is eventually consistent
        query = f"BatchExportId='{export['id']}'"
        return run["workflow_id"] in temporal_cli_run(
            "workflow", "list", "--query", query, address=os.environ["TEMPORAL_ADDRESS"]
        )

    await eventually(in_visibility)

    # What the run did is in its logs, newest first.
    status, entries = await project.request("GET", f"batch_exports/{export['id']}/runs/{run['id']}/logs/")
    assert status == 200
    messages = [entry["message"] for entry in entries["results"]]
    assert messages[0] == "Run Completed: 25 records exported" and messages[-1].startswith("Run started")
    assert {entry["instance_id"] for entry in entries["results"]} == {run["workflow_run_id"]}
    status, found = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"search": "25 rec"})
    assert [entry["message"] for entry in found["results"]] == [messages[0]]
    status, found = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"level": "ERROR"})
    assert (status, found["results"]) == (200, [])
    status, error = await project.request("GET", f"batch_exports/{export['id']}/logs/", params={"level": "LOUD"})
    assert (status, error["attr"]) == (400, "level")
