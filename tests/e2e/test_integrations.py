"""Integrations: a credential kept once in the project, named by exports, rotated without editing them."""

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp

from batch_exports.store import api_keys
from tests.support.helpers import another_gateway, create_export, insert_events, run_hour
from tests.support.listeners import listening
from tests.support.receiver import running_receiver
from tests.support.stack import API_KEY, Project


async def integration(project: Project, body: dict[str, Any], key: str | None = None) -> tuple[int, Any]:
    kwargs = {"key": key} if key else {}
    return await project.request("POST", "integrations/", json=body, **kwargs)


def http_export(integration_id: str, **config: Any) -> dict[str, Any]:
    destination = {"type": "HTTP", "config": {"integration_id": integration_id, **config}}
    return {"name": f"via-{integration_id[:8]}", "interval": "hour", "destination": destination}


async def key_with(project: Project, *scopes: str) -> str:
    key = f"phx_{uuid.uuid4().hex}"
    await api_keys.ensure(project.stack.pool, key, label="scoped", scopes=scopes, project_ids=[project.id])
    return key


async def test_an_export_runs_with_its_integrations_secret_and_a_rotation_reaches_it(project: Project) -> None:
    async with running_receiver("first-token-0123") as receiver:
        status, created = await integration(project, {
            "kind": "http", "display_name": "Our capture", "config": {"url": receiver.url},
            "sensitive_config": {"token": "first-token-0123"},
        })  # fmt: skip
        assert status == 201, created
        assert (created["kind"], created["display_name"], created["config"]) == ("http", "Our capture", {
            "url": receiver.url})  # fmt: skip
        assert "sensitive_config" not in created and "first-token-0123" not in json.dumps(created)
        export = await create_export(project, http_export(created["id"]))
        assert export["destination"]["config"]["integration_id"] == created["id"]
        assert "token" not in export["destination"]["config"]

        end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) - timedelta(hours=2)
        first = await insert_events(project.stack, project.id, [end - timedelta(minutes=30)])
        runs = await run_hour(project, export, end, 1)
        assert runs[-1]["status"] == "Completed", runs
        assert set(receiver.deliveries) == first

        # Rotate: the receiver now takes only the new token; the export is not edited.
        receiver.token = "second-token-4567"
        status, rotated = await project.request(
            "PATCH", f"integrations/{created['id']}/", json={"sensitive_config": {"token": "second-token-4567"}}
        )
        assert status == 200, rotated
        second = await insert_events(project.stack, project.id, [end + timedelta(minutes=30)])
        runs = await run_hour(project, export, end + timedelta(hours=1), 2)
        assert [run["status"] for run in runs] == ["Completed", "Completed"], runs
        assert set(receiver.deliveries) == first | second

    stored = await project.stack.pool.fetchrow(
        "SELECT i.encrypted, d.config_encrypted FROM integrations i, batch_export_destinations d "
        "JOIN batch_exports e ON e.destination_id = d.id WHERE i.id = $1 AND e.id = $2",
        uuid.UUID(created["id"]),
        uuid.UUID(export["id"]),
    )
    assert b"second-token" not in stored["encrypted"]  # encrypted at rest
    own = project.stack.runtime.cipher.decrypt(stored["config_encrypted"])
    assert own == {**own, "integration_id": created["id"]} and "token" not in own and "url" not in own


async def test_integration_rules(project: Project) -> None:
    http = {"kind": "http", "config": {"url": "http://127.0.0.1:9/batch/"}, "sensitive_config": {"token": "t-0123456"}}
    for body, attr in [
        ({**http, "kind": "ftp"}, "kind"),
        ({**http, "sensitive_config": {}}, "sensitive_config__token"),
        ({**http, "config": {"url": "http://127.0.0.1:9/", "port": 1}}, "config__port"),
        ({**http, "config": {"url": "not a url"}}, "config__url"),
    ]:
        status, error = await integration(project, body)
        assert (status, error["attr"]) == (400, attr), (body, error)
    status, created = await integration(project, http)
    assert status == 201, created
    status, postgres = await integration(project, {
        "kind": "postgresql", "config": {"host": "127.0.0.1", "database": "d"},
        "sensitive_config": {"user": "u", "password": "p"},
    })  # fmt: skip
    assert status == 201, postgres

    # An export names it without giving what it fills, and only with the destination of its kind.
    for body, attr in [
        (http_export(created["id"], token="inline"), "destination__config__token"),
        (http_export(postgres["id"]), "destination__config__integration_id"),
        (http_export(str(uuid.uuid4())), "destination__config__integration_id"),
        # How TLS is checked on the way to the password is the integration's too: no export turns it off.
        (
            {
                "name": "pg",
                "interval": "hour",
                "destination": {
                    "type": "Postgres",
                    "config": {"integration_id": postgres["id"], "table_name": "t", "has_self_signed_cert": True},
                },
            },
            "destination__config__has_self_signed_cert",
        ),
    ]:
        status, error = await project.request("POST", "batch_exports/", json=body)
        assert (status, error["attr"]) == (400, attr), (body, error)
    other = await project.stack.new_project()
    status, error = await other.request("POST", "batch_exports/", json=http_export(created["id"]))
    assert (status, error["attr"]) == (400, "destination__config__integration_id"), error  # not another project's
    status, _ = await other.request("GET", f"integrations/{created['id']}/")
    assert status == 404

    # Moving its secrets elsewhere needs them again.
    path = f"integrations/{created['id']}/"
    status, error = await project.request("PATCH", path, json={"config": {"url": "http://127.0.0.2:9/batch/"}})
    assert (status, error["attr"]) == (400, "sensitive_config__token"), error
    moved = {"config": {"url": "http://127.0.0.2:9/batch/"}, "sensitive_config": {"token": "t-7654321"}}
    status, body = await project.request("PATCH", path, json=moved)
    assert (status, body["config"]["url"]) == (200, "http://127.0.0.2:9/batch/"), body

    # In use: a 409 naming the export; an export's own PATCH keeps it; once the export is gone, it can go.
    export = await create_export(project, http_export(created["id"]))
    status, error = await project.request("DELETE", path)
    assert (status, error["code"], error["batch_exports"]) == (409, "in_use", [
        {"id": export["id"], "name": export["name"]}]), error  # fmt: skip
    status, patched = await project.request("PATCH", f"batch_exports/{export['id']}/", json={"name": "renamed"})
    assert (status, patched["destination"]["config"]["integration_id"]) == (200, created["id"]), patched
    status, error = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"config": {"url": "http://127.0.0.3/"}}}
    )
    assert (status, error["attr"]) == (400, "destination__config__url"), error
    inline = {"integration_id": None, "url": "http://127.0.0.1:9/batch/", "token": "inline-0123"}
    status, patched = await project.request(
        "PATCH", f"batch_exports/{export['id']}/", json={"destination": {"config": inline}}
    )
    assert (status, patched["destination"]["config"]["integration_id"]) == (200, None), patched
    assert (await project.request("DELETE", path))[0] == 204
    assert (await project.request("GET", path))[0] == 404
    status, page = await project.request("GET", "integrations/")
    assert (status, [i["id"] for i in page["results"]]) == (200, [postgres["id"]])


async def test_integration_scopes(project: Project) -> None:
    exports_only = await key_with(project, api_keys.WRITE)
    reader = await key_with(project, api_keys.INTEGRATION_READ)
    writer = await key_with(project, api_keys.INTEGRATION_WRITE)
    body = {"kind": "http", "config": {"url": "http://127.0.0.1:9/"}, "sensitive_config": {"token": "t-0123456"}}
    assert (await project.request("GET", "integrations/", key=exports_only))[0] == 403
    assert (await integration(project, body, key=reader))[0] == 403
    status, created = await integration(project, body, key=writer)
    assert status == 201, created
    assert (await project.request("GET", f"integrations/{created['id']}/", key=reader))[0] == 200
    assert (await project.request("GET", "integrations/", key=writer))[0] == 200  # write implies read
    status, page = await project.request(
        "GET", f"/api/projects/{project.id}/integrations/", key=reader
    )  # the /api/projects/ twin
    assert (status, page["count"]) == (200, 1), page


async def test_an_integration_change_is_held_to_the_address_policy_of_its_exports(project: Project) -> None:
    body = {"kind": "http", "config": {"url": "https://203.0.113.10/batch/"},
            "sensitive_config": {"token": "t-0123456"}}  # fmt: skip
    status, created = await integration(project, body)
    assert status == 201, created
    status, unused = await integration(project, body)
    assert status == 201, unused
    await create_export(project, http_export(created["id"]))
    async with (
        listening() as attacker,
        another_gateway(project.stack, allow_private_destinations=False) as gateway,
        aiohttp.ClientSession(headers={"Authorization": f"Bearer {API_KEY}"}) as http,
    ):
        moved = {"config": {"url": f"http://{attacker.host}:{attacker.port}/batch/"},
                 "sensitive_config": {"token": "t-0123456"}}  # fmt: skip
        url = f"{gateway}/api/projects/{project.id}/integrations/"
        async with http.patch(f"{url}{created['id']}/", json=moved) as response:
            error = await response.json()
        assert (response.status, error["attr"]) == (400, "config__url"), error
        assert "BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS" in error["detail"] and created["id"] not in error["detail"]
        async with http.patch(f"{url}{unused['id']}/", json=moved) as response:  # no export follows it there
            assert response.status == 200, await response.json()
    assert attacker.connections == 0
    status, kept = await project.request("GET", f"integrations/{created['id']}/")
    assert (status, kept["config"]["url"]) == (200, "https://203.0.113.10/batch/")


async def test_the_openapi_document_holds_the_new_routes(project: Project) -> None:
    status, document = await project.request("GET", "/api/schema/")
    assert status == 200
    paths = document["paths"]
    for prefix in ("/api/environments/{project_id}", "/api/projects/{project_id}"):
        assert set(paths[f"{prefix}/integrations/"]) == {"get", "post"}
        assert set(paths[f"{prefix}/integrations/{{id}}/"]) == {"get", "patch", "delete"}
        assert set(paths[f"{prefix}/notification_targets/"]) == {"get", "post"}
        assert set(paths[f"{prefix}/notification_targets/{{id}}/"]) == {"delete"}
        backfills = paths[f"{prefix}/batch_exports/{{batch_export_id}}/backfills/"]["post"]
        assert "dry_run" in {p["name"] for p in backfills["parameters"]} and "200" in backfills["responses"]
    created = document["components"]["schemas"]["Integration"]["properties"]
    assert "sensitive_config" not in created and "config" in created
