"""The key CLI: a created key works once printed, carries its scopes, and stops working when revoked."""

import asyncio
import os
import subprocess
import sys
from pathlib import Path

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.stack import Project


async def cli(project: Project, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "BATCH_EXPORTS_DATABASE_URL": project.stack.settings.database_url}
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "entrypoints.keys", *args], env=env, capture_output=True, text=True
    )


async def test_create_use_and_revoke_a_key(project: Project) -> None:
    created = await cli(
        project, "create", "--label", "reader", "--scope", "batch_export:read", "--project", str(project.id)
    )
    assert created.returncode == 0, created.stderr
    key = created.stdout.strip()
    assert key.startswith("phx_") and len(key) > 40
    status, _ = await project.request("GET", "batch_exports/", key=key)
    assert status == 200
    status, _ = await project.request("POST", "batch_exports/", key=key, json={})
    assert status == 403
    listed = await cli(project, "list")
    line = next(line for line in listed.stdout.splitlines() if " reader " in line and f"projects={project.id} " in line)
    assert key not in listed.stdout and "active" in line
    revoked = await cli(project, "revoke", line.split()[0])
    assert revoked.returncode == 0, revoked.stderr
    for _ in range(100):  # the gateway kept the key until PostgreSQL tells it (asynchronously) of the revocation
        status, _ = await project.request("GET", "batch_exports/", key=key)
        if status != 200:
            break
        await asyncio.sleep(0.02)
    assert status == 401
    again = await cli(project, "revoke", line.split()[0])
    assert again.returncode == 1 and "no active key" in again.stderr


def test_with_no_stack_it_says_what_to_set_without_a_traceback_or_the_password(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BATCH_EXPORTS_")}
    env |= {"BATCH_EXPORTS_DATABASE_URL": f"postgresql://postgres:s3cr3t-pw@{LOOPBACK}:{free_port()}/batch_exports"}
    for command in (["entrypoints.keys", "list"], ["entrypoints.projects", "list"], ["entrypoints.migrate"]):
        ran = subprocess.run(
            [sys.executable, "-m", *command], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
        )
        assert ran.returncode == 1 and "Traceback" not in ran.stderr, ran.stderr
        assert "no database answers at postgresql://postgres@127.0.0.1:" in ran.stderr
        assert "`make dev`" in ran.stderr and "BATCH_EXPORTS_DATABASE_URL" in ran.stderr
        assert "s3cr3t-pw" not in ran.stderr + ran.stdout
