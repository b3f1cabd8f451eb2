"""What an operator reads in the Temporal UI: each run and backfill carries its export's name
(`BatchExportName`, a column of the workflow list), a trigger's hand-over says it exports nothing, current
details give sizes in the unit that fits, and an operator's cancel is not logged as an error."""

import logging
import os
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata

from contracts.intervals import Interval, IntervalSpec, last_whole_interval, run_workflow_id
from contracts.search_attributes import BATCH_EXPORT_NAME, HANDED_OVER
from tests.support.helpers import (
    create_export,
    eventually,
    insert_events,
    later_boundary,
    runs_until,
    start_run,
    temporal_cli_run,
)
from tests.support.stack import Project


def file_export(path: str, **fields: Any) -> dict[str, Any]:
    return {"name": path, "interval": "hour", "destination": {"type": "File", "config": {"path": path}}, **fields}


async def names_by_workflow(project: Project, export_id: str) -> dict[str, str | None]:
    found = {}
    async for execution in project.stack.client.list_workflows(f"BatchExportId = '{export_id}'"):
        found[execution.id] = execution.typed_search_attributes.get(BATCH_EXPORT_NAME)
    return found


async def test_runs_and_backfills_carry_the_name_and_a_hand_over_says_what_it_is(project: Project) -> None:
    name = f"nightly events {project.id}"
    export = await create_export(project, file_export(f"ui-{project.id}", name=name, paused=False))
    interval = last_whole_interval(IntervalSpec(Interval.HOUR), datetime.now(UTC))
    await insert_events(project.stack, project.id, [interval.end - timedelta(minutes=m) for m in (5, 10)])
    temporal_cli_run("schedule", "trigger", "--schedule-id", export["id"], "--overlap-policy", "AllowAll",
                     address=os.environ["TEMPORAL_ADDRESS"])  # fmt: skip
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"], within=60)
    run_id = run_workflow_id(export["id"], interval.end)

    async def two_rows() -> dict[str, str | None] | None:
        found = await names_by_workflow(project, export["id"])
        return found if len(found) == 2 else None

    rows = await eventually(two_rows)  # visibility trails the executions a little
    (hand_over,) = set(rows) - {run_id}
    assert rows == {run_id: name, hand_over: f"{name} {HANDED_OVER}"}

    # A backfill and the run it starts carry the name too.
    status, body = await project.request(
        "POST",
        f"batch_exports/{export['id']}/backfills/",
        json={"start_at": (interval.start - timedelta(hours=1)).isoformat(), "end_at": interval.start.isoformat()},
    )
    assert status == 201, body

    async def backfilled() -> dict[str, str | None] | None:
        found = await names_by_workflow(project, export["id"])
        return found if len(found) == 4 else None

    rows = await eventually(backfilled, within=60)
    assert rows[run_workflow_id(export["id"], interval.start)] == name
    assert [n for wid, n in rows.items() if "backfill" in wid] == [name]

    # The run's current details: a few hundred bytes read as bytes, not "0.0 MB".
    metadata = await project.stack.client.get_workflow_handle(run_id).query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    assert metadata.current_details.startswith("Completed: 2 records, ") and " B exported" in metadata.current_details
    assert "MB" not in metadata.current_details


async def test_an_operators_cancel_is_logged_at_info(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    export = await create_export(project, file_export(f"cancel-{project.id}"))
    await start_run(project.stack, export, end=later_boundary())
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Starting"])
    temporal_cli_run("workflow", "cancel", "--workflow-id", run["workflow_id"],
                     address=os.environ["TEMPORAL_ADDRESS"])  # fmt: skip
    await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Cancelled"])

    async def cancelled() -> list[dict[str, Any]]:
        _, logs = await project.request("GET", f"batch_exports/{export['id']}/logs/")
        return [e for e in logs["results"] if e["message"].startswith("Run Cancelled")]

    (entry,) = await eventually(cancelled)  # the row may read Cancelled (reconciled) before the run says so
    assert entry["level"] == "INFO", entry
    said = [r for r in caplog.records if r.getMessage().startswith("Run Cancelled")]
    assert said and all(r.levelno == logging.INFO for r in said), [(r.levelname, r.getMessage()) for r in said]
