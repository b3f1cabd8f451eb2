"""Bad input through HTTP: a 4xx that names the problem, never a 500, and nothing half-written."""

import gzip
import json
import uuid

from batch_exports.store import api_keys
from tests.support.helpers import event
from tests.support.stack import Project, Stack

NOOP_EXPORT = {"name": "n", "interval": "hour", "destination": {"type": "NoOp"}}


async def count(stack: Stack, table: str, team_id: int) -> int:
    return await stack.pool.fetchval(f"SELECT count(*) FROM {table} WHERE team_id = $1", team_id)  # type: ignore[no-any-return]


async def test_health_reports_database_and_temporal(stack: Stack) -> None:
    async with stack.http.get(stack.base_url + "/_health") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok", "database": "ok", "temporal": "ok"}


async def test_malformed_json_is_a_400(project: Project) -> None:
    status, body = await project.request("POST", "batch_exports/", data=b"{not json")
    assert status == 400 and body["code"] == "parse_error" and body["type"] == "invalid_request"


async def test_invalid_fields_are_400s_naming_the_field(project: Project) -> None:
    cases = [
        ({**NOOP_EXPORT, "interval": "fortnight"}, "interval"),
        ({**NOOP_EXPORT, "destination": {"type": "Pigeon"}}, "destination__type"),
        ({"interval": "hour", "destination": {"type": "NoOp"}}, "name"),
        ({**NOOP_EXPORT, "destination": {"type": "File", "config": {"path": "x", "secret": 1}}},
         "destination__config__secret"),
    ]  # fmt: skip
    for raw, attr in cases:
        status, body = await project.request("POST", "batch_exports/", json=raw)
        assert (status, body["type"], body["attr"]) == (400, "validation_error", attr), body
    status, body = await project.request("POST", "batch_exports/", json=["not", "an", "object"])
    assert status == 400 and body["type"] == "validation_error"
    assert await count(project.stack, "batch_exports", project.id) == 0


async def test_missing_or_wrong_key_is_401(project: Project) -> None:
    status, body = await project.request("GET", "batch_exports/", key=None)
    assert status == 401 and body["type"] == "authentication_error"
    status, body = await project.request("GET", "batch_exports/", key="phx_not_a_key")
    assert status == 401 and body["code"] == "authentication_failed"


async def test_scopes_and_projects_of_a_key(project: Project) -> None:
    other = await project.stack.new_project()
    reader = f"phx_reader_{uuid.uuid4().hex}"
    await api_keys.ensure(project.stack.pool, reader, label="reader", scopes=(api_keys.READ,), project_ids=[project.id])
    status, _ = await project.request("GET", "batch_exports/", key=reader)
    assert status == 200
    status, body = await project.request("POST", "batch_exports/", key=reader, json=NOOP_EXPORT)
    assert status == 403 and "batch_export:write" in body["detail"]
    status, _ = await other.request("GET", "batch_exports/", key=reader)
    assert status == 404


async def test_unknown_and_foreign_exports_are_404(project: Project) -> None:
    status, export = await project.request("POST", "batch_exports/", json=NOOP_EXPORT)
    assert status == 201
    other = await project.stack.new_project()
    for path in (f"batch_exports/{uuid.uuid4()}/", "batch_exports/not-a-uuid/", f"batch_exports/{export['id']}/runs/"):
        status, body = await other.request("GET", path)
        assert (status, body["code"]) == (404, "not_found"), path
    status, _ = await project.request("GET", f"batch_exports/{export['id']}/runs/?cursor=garbage")
    assert status == 400


async def test_secret_free_schedule_input(project: Project) -> None:
    """The schedule carries ids and the interval only; the config lives encrypted in the database."""
    body = {**NOOP_EXPORT, "destination": {"type": "File", "config": {"path": "secretive"}}}
    status, export = await project.request("POST", "batch_exports/", json=body)
    assert status == 201
    described = await project.stack.client.get_schedule_handle(export["id"]).describe()
    payloads = described.schedule.action.args  # type: ignore[attr-defined]
    assert payloads and all(b"secretive" not in payload.data for payload in payloads)
    assert export["id"].encode() in payloads[0].data
    stored = await project.stack.pool.fetchval(
        "SELECT d.config_encrypted FROM batch_exports e JOIN batch_export_destinations d ON d.id = e.destination_id "
        "WHERE e.id = $1",
        uuid.UUID(export["id"]),
    )
    assert b"secretive" not in stored


async def test_capture_with_a_wrong_token_writes_nothing(project: Project) -> None:
    status, body = await project.request(
        "POST", "/batch/", key=None, json={"api_key": "phc_wrong", "batch": [event("x", "someone")]}
    )
    assert status == 401 and body["type"] == "authentication_error"
    status, _ = await project.request("POST", "/batch/", key=None, json={"batch": [event("x", "someone")]})
    assert status == 401


async def test_capture_with_one_bad_event_writes_nothing(project: Project) -> None:
    batch = [event("good", "a"), {"event": "no distinct id"}]
    status, body = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": batch})
    assert status == 400 and "batch[1].distinct_id" in body["detail"]
    assert await count(project.stack, "events", project.id) == 0
    assert await count(project.stack, "persons", project.id) == 0


async def test_capture_accepts_gzip_and_single_events(project: Project) -> None:
    payload = gzip.compress(json.dumps({"api_key": project.token, "batch": [event("zipped", "a")]}).encode())
    status, _ = await project.request("POST", "/batch/", key=None, data=payload, headers={"Content-Encoding": "gzip"})
    assert status == 200
    single = {**event("single", "b"), "api_key": project.token}
    for path in ("/capture/", "/e/", "/i/v0/e/"):
        status, _ = await project.request("POST", path, key=None, json=single)
        assert status == 200, path
    assert await count(project.stack, "events", project.id) == 4


async def test_destination_checks_before_and_after_saving(project: Project) -> None:
    status, body = await project.request("GET", "batch_exports/test/", params={"destination": "File"})
    assert status == 200 and body["steps"][0]["name"] == "Write to the directory"
    status, body = await project.request("GET", "batch_exports/test/", params={"destination": "Carrier pigeon"})
    assert status == 404 and "Carrier pigeon" in body["detail"]  # PostHog's: no such destination, no checks
    status, body = await project.request("GET", "batch_exports/test/")
    assert (status, body["attr"]) == (400, "destination")

    good = {"type": "File", "config": {"path": f"checked-{project.id}"}}
    status, body = await project.request(
        "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": good}
    )
    assert (status, body["name"], body["result"]) == (
        200,
        "Write to the directory",
        {"status": "Passed", "message": None},
    )
    project.files.mkdir(parents=True, exist_ok=True)
    (project.files / f"a-file-{project.id}").write_text("x")
    bad = {"type": "File", "config": {"path": f"a-file-{project.id}/below"}}
    status, body = await project.request(
        "POST", "batch_exports/run_test_step_new/", json={"step": 0, "destination": bad}
    )
    assert status == 200 and body["result"]["status"] == "Failed" and "cannot write to" in body["result"]["message"]
    status, body = await project.request(
        "POST", "batch_exports/run_test_step_new/", json={"step": 7, "destination": good}
    )
    assert (status, body["attr"]) == (400, "step")

    status, export = await project.request("POST", "batch_exports/", json={**NOOP_EXPORT, "destination": good})
    assert status == 201
    status, body = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
    assert (status, body["result"]["status"]) == (200, "Passed")


async def test_a_huge_body_is_413_and_writes_nothing(project: Project) -> None:
    limit = project.stack.settings.max_body_mb * 2**20
    huge = b'{"name": "' + b"x" * (limit + 1) + b'"}'
    status, body = await project.request("POST", "batch_exports/", data=huge)
    assert status == 413 and body["code"] == "too_large"
    batch = json.dumps({"api_key": project.token, "batch": [event("x", "y", pad="p" * (limit + 1))]}).encode()
    status, body = await project.request("POST", "/batch/", key=None, data=batch)
    assert status == 413
    assert await count(project.stack, "events", project.id) == 0
    assert await count(project.stack, "batch_exports", project.id) == 0
