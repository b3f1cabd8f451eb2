"""Hostile input, second round (issue 20): bounds that were 500s or 503s, paths that symlinks led out of the
project's root, a Postgres password offered without TLS, secrets echoed back escaped, and which config fields
say where a secret goes.

Everything stays on loopback: an address that must play "public" is refused before any connection is made.
"""

import asyncio
import base64
import json
import logging
import os
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp import web

from tests.support.destinations import postgres_database, s3_config
from tests.support.helpers import capture, create_export, event, run_hour
from tests.support.hostile import NOOP, destination, write_only_key
from tests.support.listeners import serving
from tests.support.own_network import PUBLIC_STAND_IN, available, in_own_network
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Project, Stack

# Bounds: each a 4xx naming the field, never a 500 or 503.


async def test_long_distinct_and_session_ids_are_400s_naming_them(project: Project) -> None:
    cases = [
        (event("long", "d" * 8000), "distinct_id"),
        (event("long", "d", **{"$session_id": "s" * 8000}), "$session_id"),
        (event("long", "d", **{"$session_id": {"nested": "s" * 8000}}), "$session_id"),
    ]
    for raw, attr in cases:
        status, body = await project.request(
            "POST", "/batch/", key=None, json={"api_key": project.token, "batch": [raw]}
        )
        assert (status, body["attr"]) == (400, attr), body
        assert "200" in body["detail"] or "string" in body["detail"]
    fits = event("fits", "d" * 200, **{"$session_id": "s" * 200})
    status, body = await project.request("POST", "/batch/", key=None, json={"api_key": project.token, "batch": [fits]})
    assert status == 200, body
    stored = await project.stack.pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1", project.id)
    assert stored == 1


async def test_times_beyond_a_datetime_are_400s_naming_the_parameter(project: Project) -> None:
    export = await create_export(project, NOOP)
    runs = f"batch_exports/{export['id']}/runs/"
    for name, value in [
        ("after", "-999999d"),
        ("before", "-999999y"),
        ("start", "0001-01-01T00:00:00+14:00"),
        ("end", "9999-12-31T23:59:59-14:00"),
    ]:
        status, body = await project.request("GET", runs, params={name: value})
        assert (status, body["attr"]) == (400, name), (name, body)
    logs = f"batch_exports/{export['id']}/logs/"
    status, body = await project.request("GET", logs, params={"after": "0001-01-01T00:00:00+14:00"})
    assert (status, body["attr"]) == (400, "after"), body
    for field, value in [
        ("start_at", "0001-01-01T00:00:00+14:00"),
        ("end_at", "9999-12-31T23:59:59-14:00"),
        ("start_at", "9999-12-31T23:00:00Z"),
    ]:
        status, body = await project.request("POST", "batch_exports/", json={**NOOP, field: value})
        assert (status, body["attr"]) == (400, field), (field, value, body)
    tampered = json.dumps(["0001-01-01T00:00:00+14:00", str(uuid.uuid4()), False])
    cursor = base64.urlsafe_b64encode(tampered.encode()).decode().rstrip("=")
    for path in (runs, f"batch_exports/{export['id']}/backfills/"):
        status, body = await project.request("GET", path, params={"cursor": cursor})
        assert (status, body["attr"]) == (400, "cursor"), (path, body)


async def test_a_name_is_bounded_in_bytes_as_temporal_stores_it(project: Project) -> None:
    status, body = await project.request("POST", "batch_exports/", json={**NOOP, "name": "\U0001f600" * 400})
    assert (status, body["attr"]) == (400, "name"), body
    assert "2048 bytes" in body["detail"]
    export = await create_export(project, {**NOOP, "name": "\U0001f600" * 150})  # 1,802 bytes: fits
    status, body = await project.request("PATCH", f"batch_exports/{export['id']}/", json={"name": "\u00e9" * 400})
    assert (status, body["attr"]) == (400, "name"), body
    status, body = await project.request("GET", f"batch_exports/{export['id']}/")
    assert body["name"] == "\U0001f600" * 150


async def cli(stack: Stack, module: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": stack.settings.database_url}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", module, *args], env=env, capture_output=True, text=True
    )


async def test_the_clis_refuse_bad_projects_without_a_traceback(project: Project) -> None:
    stack = project.stack
    missing = await stack.pool.fetchval("SELECT max(id) + 1000 FROM projects")
    label = f"bounds-{uuid.uuid4().hex[:8]}"
    for bad in ("0", "-1", str(2**63), "1e3", str(missing)):
        made = await cli(stack, "entrypoints.keys", "create", "--label", label, "--project", bad)
        assert made.returncode != 0 and "Traceback" not in made.stderr, (bad, made.stderr)
        assert "project" in made.stderr and made.stdout == "", (bad, made.stderr)
    assert await stack.pool.fetchval("SELECT count(*) FROM personal_api_keys WHERE label = $1", label) == 0
    made = await cli(stack, "entrypoints.keys", "create", "--label", label, "--project", str(project.id))
    assert made.returncode == 0 and made.stdout.startswith("phx_"), made.stderr
    before = await stack.pool.fetchval("SELECT count(*) FROM projects")
    for bad in ("", "   ", "x" * 401):
        made = await cli(stack, "entrypoints.projects", "create", "--name", bad)
        assert made.returncode == 2 and "Traceback" not in made.stderr and "name" in made.stderr, made.stderr
    assert await stack.pool.fetchval("SELECT count(*) FROM projects") == before


# Which fields say where a secret goes.


async def test_tls_mode_and_kms_key_are_scope_fields(project: Project, s3_service: SeaweedS3) -> None:
    writer = await write_only_key(project)
    postgres, _ = await postgres_database(project)
    s3 = s3_config(s3_service, f"scope-{uuid.uuid4().hex[:8]}")
    cases: list[tuple[str, dict[str, Any], dict[str, Any], str]] = [
        ("Postgres", postgres, {"has_self_signed_cert": True}, "password"),
        (
            "S3Compatible",
            s3,
            {"encryption": "aws:kms", "kms_key_id": "arn:aws:kms:us-east-1:1:key/theirs"},
            "aws_access_key_id",
        ),
    ]
    for kind, config, change, first in cases:
        export = await create_export(project, destination(kind, config))
        for method, path, body in [
            ("PATCH", f"batch_exports/{export['id']}/", {"destination": {"config": change}}),
            ("POST", f"batch_exports/{export['id']}/run_test_step/", {"step": 0, "destination": {"config": change}}),
        ]:
            status, answer = await project.request(method, path, key=writer, json=body)
            assert (status, answer["attr"]) == (400, f"destination__config__{first}"), (kind, path, answer)
        secrets = {name: config[name] for name in ("user", "password", "aws_access_key_id", "aws_secret_access_key")
                   if name in config}  # fmt: skip
        status, answer = await project.request(
            "PATCH",
            f"batch_exports/{export['id']}/",
            key=writer,
            json={"destination": {"config": {**change, **secrets}}},
        )
        assert status == 200, answer


async def test_a_bucket_changes_without_the_keys_as_posthog_allows(
    project: Project, s3: Any, s3_service: SeaweedS3
) -> None:
    """PostHog's own `test_can_patch_config`: a PATCH of `bucket_name` alone is a 200 (SigV4 sends the secret key
    nowhere); the stored keys then write to the new bucket. `endpoint_url` still needs the keys."""
    first, second = f"first-{uuid.uuid4().hex[:8]}", f"second-{uuid.uuid4().hex[:8]}"
    for bucket in (first, second):
        await s3.create_bucket(Bucket=bucket)
    writer = await write_only_key(project)
    export = await create_export(project, destination("S3Compatible", s3_config(s3_service, first)))
    path = f"batch_exports/{export['id']}/"
    change = {"type": "S3Compatible", "config": {"bucket_name": second, "region": "eu-west-1"}}
    status, body = await project.request("PATCH", path, key=writer, json={"destination": change})
    assert status == 200, body
    assert body["destination"]["config"]["bucket_name"] == second
    status, check = await project.request("POST", f"{path}run_test_step/", key=writer, json={"step": 0})
    assert (status, check["result"]["status"]) == (200, "Passed"), check
    status, body = await project.request(
        "PATCH", path, key=writer, json={"destination": {"config": {"endpoint_url": "http://127.0.0.1:9/"}}}
    )
    assert (status, body["attr"]) == (400, "destination__config__aws_access_key_id"), body


# Secrets echoed back escaped are redacted too.


def escaped_forms(secret: str) -> list[str]:
    """How a server may echo a secret: as it is, JSON-escaped (`\\/`, every character `\\uXXXX`), percent-encoded."""
    return [
        secret,
        secret.replace("/", "\\/"),
        "".join(f"\\u{ord(c):04x}" for c in secret),
        quote(secret, safe=""),
    ]


async def test_a_token_echoed_back_escaped_is_redacted(project: Project, caplog: pytest.LogCaptureFixture) -> None:
    token = f"tok/LEAK/{uuid.uuid4().hex[:6]}"
    forms = escaped_forms(token)

    async def refuse(request: web.Request) -> web.Response:
        said = f'{{"detail":"bad token {forms[1]} ({forms[2]}) {forms[3]}"}}'
        return web.Response(status=400, text=said, content_type="application/json")

    app = web.Application()
    app.router.add_post("/batch/", refuse)
    caplog.set_level(logging.DEBUG)
    async with serving(app) as url:
        export = await create_export(project, destination("HTTP", {"url": f"{url}/batch/", "token": token}))
        _, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": 0})
        assert check["result"]["status"] == "Failed" and "bad token [redacted]" in check["result"]["message"], check
        await capture(project, [event("e", "someone")])
        (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "bad token [redacted] ([redacted]) [redacted]" in run["latest_error"], run
    shown = [check["result"]["message"], run["latest_error"]]
    for path in (f"batch_exports/{export['id']}/logs/", f"batch_exports/{export['id']}/runs/{run['id']}/logs/"):
        shown += [entry["message"] for entry in (await project.request("GET", path))[1]["results"]]
    history = await project.stack.client.get_workflow_handle(run["workflow_id"]).fetch_history()
    shown += strings(json.loads(history.to_json()))
    formatter = logging.Formatter()
    shown += [formatter.format(record) for record in caplog.records]
    assert [(form, text) for text in shown for form in forms if form in text] == []


def strings(value: Any) -> list[str]:
    """Every string in a JSON document (a Temporal history: failure messages, stack traces, ...)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


# A Postgres password never travels in clear.


async def no_tls_server_run(address: str, allow_private: bool, own_network: bool) -> dict[str, Any]:
    """Have the Postgres destination connect to a server that refuses TLS and asks for the password in clear."""
    command = [sys.executable, "-m", "tests.support.no_tls_postgres", address, str(allow_private).lower()]
    done = await asyncio.to_thread(
        subprocess.run, in_own_network(command) if own_network else command, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(not available(), reason="needs an unprivileged network namespace (unshare --user --net)")
async def test_a_password_is_never_sent_in_clear_to_a_public_address() -> None:
    """A public address (one added to `lo` in a network namespace of the test's own) that refuses TLS never gets
    the password, whether private destinations are allowed or not; a private one may, where they are allowed."""
    for allow_private in (False, True):
        public = await no_tls_server_run(PUBLIC_STAND_IN, allow_private, own_network=True)
        assert public["ssl_requests"] == 1 and public["passwords"] == [], public
        assert "does not offer TLS" in public["error"] and "DestinationUserError" in public["error"], public
    private = await no_tls_server_run("127.0.0.1", True, own_network=False)
    assert private["passwords"] == ["pw-in-clear"], private


# Nothing is written outside the project's directory, whatever links exist below it.


def everything_under(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"))


@pytest.mark.parametrize(
    ("kind", "config", "link"),
    [
        ("File", {"path": "lake3/posthog"}, "lake3/posthog"),
        ("File", {"path": "lake3", "prefix": "posthog/daily"}, "lake3/posthog"),
        ("Iceberg", {"storage": "File", "path": "lake3", "table_name": "events"}, "lake3/posthog"),
        ("Iceberg", {"storage": "File", "path": "lake3", "table_name": "events"}, "lake3/posthog/events/metadata"),
        ("DeltaLake", {"storage": "File", "path": "lake3", "table_name": "events"}, "lake3/events"),
        ("DeltaLake", {"storage": "File", "path": "lake3", "table_name": "events"}, "lake3/events/_delta_log"),
    ],
)  # fmt: skip
async def test_a_link_below_the_project_directory_is_never_followed(
    project: Project, tmp_path: Path, kind: str, config: dict[str, Any], link: str
) -> None:
    """`.data/exports/{project}/lake3/posthog -> /elsewhere`: the run fails as the user's to fix, its checks say
    why, and nothing is written at /elsewhere."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    planted = project.files / link
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.symlink_to(elsewhere, target_is_directory=True)
    export = await create_export(project, destination(kind, config))
    await capture(project, [event("e", f"user-{i}") for i in range(3)])
    (run,) = await run_hour(project, export, datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1), 1)
    assert run["status"] == "Failed" and "symbolic link" in run["latest_error"], run
    _, test = await project.request("GET", f"batch_exports/test/?destination={kind}")
    said = []
    for step in range(len(test["steps"])):
        _, check = await project.request("POST", f"batch_exports/{export['id']}/run_test_step/", json={"step": step})
        said.append(check["result"]["message"] or "")
    assert any("symbolic link" in message for message in said), said
    assert everything_under(elsewhere) == []
    assert planted.is_symlink()  # left as it was
