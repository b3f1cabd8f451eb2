"""The HTTP destination, against this service's own capture endpoint as the receiving PostHog."""

from datetime import UTC, datetime, timedelta
from typing import Any

from tests.support.helpers import capture, create_export, event, run_hour
from tests.support.stack import Project


async def http_export(project: Project, token: str) -> dict[str, Any]:
    config = {"url": f"{project.stack.base_url}/batch/", "token": token}
    export = await create_export(
        project, {"name": "http", "interval": "hour", "destination": {"type": "HTTP", "config": config}}
    )
    assert "token" not in export["destination"]["config"]  # write-only
    return export  # type: ignore[no-any-return]


async def test_events_arrive_once_however_often_sent(project: Project) -> None:
    receiver = await project.stack.new_project()
    await capture(project, [event("e", f"user-{i}", n=i) for i in range(40)])
    export = await http_export(project, receiver.token)
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert (status, check["result"]["status"]) == (200, "Passed"), check
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert (run["status"], run["records_completed"]) == ("Completed", 40), run
    again = await run_hour(project, export, end, 2)  # the same interval again
    assert [r["status"] for r in again] == ["Completed", "Completed"], again

    pool = project.stack.pool
    sent = {r["uuid"] for r in await pool.fetch("SELECT uuid FROM events WHERE team_id = $1", project.id)}
    received = await pool.fetch("SELECT uuid, properties FROM events WHERE team_id = $1", receiver.id)
    assert len(received) == 40 and {r["uuid"] for r in received} == sent, (len(received), len(sent))
    assert sorted(r["properties"]["n"] for r in received) == list(range(40))


async def test_a_refused_token_fails_the_run_with_the_answer(project: Project) -> None:
    await capture(project, [event("e", "someone")])
    export = await http_export(project, "phc_not_a_token")
    status, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert status == 200 and check["result"]["status"] == "Failed" and "401" in check["result"]["message"]
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    (run,) = await run_hour(project, export, end, 1)
    assert run["status"] == "Failed" and "answered 401" in run["latest_error"], run
    assert "phc_not_a_token" not in run["latest_error"]


async def test_http_exports_events_only(project: Project) -> None:
    config = {"url": "https://example.com/batch/", "token": "t"}
    body = {"name": "h", "interval": "hour", "model": "persons", "destination": {"type": "HTTP", "config": config}}
    status, error = await project.request("POST", "batch_exports/", json=body)
    assert (status, error["attr"]) == (400, "model")
