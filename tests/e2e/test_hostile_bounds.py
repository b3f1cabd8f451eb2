"""Hostile input, second round (issue 20): bounds that were 500s or 503s, paths that symlinks led out of the
project's root, a Postgres password offered without TLS, secrets echoed back escaped, and which config fields
say where a secret goes.

Everything stays on loopback: an address that must play "public" is refused before any connection is made.
"""

import asyncio
import base64
import json
import os
import subprocess
import sys
import uuid
from typing import Any

from batch_exports.store import api_keys
from tests.support.helpers import create_export, event
from tests.support.stack import Project, Stack

NOOP = {"name": "n", "interval": "hour", "destination": {"type": "NoOp"}}


async def write_only_key(project: Project) -> str:
    key = f"phx_writer_{uuid.uuid4().hex}"
    await api_keys.ensure(project.stack.pool, key, label="writer", scopes=(api_keys.WRITE,), project_ids=[project.id])
    return key


def destination(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}


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
