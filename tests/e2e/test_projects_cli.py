"""The projects CLI: a created project gets a new id and a capture token that captures into it."""

import asyncio
import os
import subprocess
import sys

from tests.support.helpers import event
from tests.support.stack import Stack


async def cli(stack: Stack, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": stack.settings.database_url}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "entrypoints.projects", *args], env=env, capture_output=True, text=True
    )


async def test_create_a_project_and_capture_into_it(stack: Stack) -> None:
    created = await cli(stack, "create", "--name", "From the CLI")
    assert created.returncode == 0, created.stderr
    project_id, token = created.stdout.split()
    assert token.startswith("phc_") and len(token) > 40
    listed = await cli(stack, "list")
    assert f"{project_id} From the CLI" in listed.stdout.splitlines()
    body = {"api_key": token, "batch": [event("cli", "user-1")]}
    async with stack.http.post(f"{stack.base_url}/batch/", json=body) as response:
        assert response.status == 200
    count = await stack.pool.fetchval("SELECT count(*) FROM events WHERE team_id = $1", int(project_id))
    assert count == 1


async def test_create_a_project_with_a_posthog_team_id(stack: Stack) -> None:
    """Reading PostHog's ClickHouse, a project's id is the PostHog team id it reads: chosen, never reused."""
    team = await stack.pool.fetchval("SELECT max(id) + 1000 FROM projects")
    created = await cli(stack, "create", "--name", "PostHog team", "--id", str(team))
    assert created.returncode == 0, created.stderr
    assert created.stdout.split()[0] == str(team)
    again = await cli(stack, "create", "--name", "Again", "--id", str(team))
    assert again.returncode == 2 and f"project {team} exists" in again.stderr
    assert await stack.pool.fetchval("SELECT name FROM projects WHERE id = $1", team) == "PostHog team"
    for bad in ("0", "-3", "x", str(2**63)):
        refused = await cli(stack, "create", "--name", "Bad", "--id", bad)
        assert refused.returncode == 2 and "positive whole number" in refused.stderr
