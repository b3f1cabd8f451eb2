"""The official `posthog` Python client, pointed at the service, delivers events that then get exported."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

from posthog import Posthog

from tests.support.helpers import create_export, runs_until, start_run
from tests.support.stack import Project


def send_with_the_official_client(host: str, token: str) -> list[str]:
    client = Posthog(token, host=host, sync_mode=True, gzip=True, max_retries=0)
    sent = [
        client.capture("signed up", distinct_id="ada", properties={"plan": "pro"}),
        client.capture("$pageview", distinct_id="ada", properties={"$current_url": "https://example.com/"}),
        client.capture("$pageview", distinct_id="grace", properties={"$set": {"email": "grace@example.com"}}),
    ]
    client.flush()
    client.shutdown()
    return [str(uuid) for uuid in sent if uuid]


async def test_events_from_the_posthog_client_reach_an_export(project: Project) -> None:
    stack = project.stack
    # The client blocks on HTTP; the gateway runs on this event loop, so the client gets a thread.
    sent = await asyncio.to_thread(send_with_the_official_client, stack.base_url, project.token)
    assert len(sent) == 3
    stored = await stack.pool.fetch("SELECT uuid, event, distinct_id FROM events WHERE team_id = $1", project.id)
    assert {str(row["uuid"]) for row in stored} == set(sent)
    grace = await stack.pool.fetchval(
        "SELECT p.properties FROM persons p JOIN person_distinct_ids d ON d.person_id = p.id "
        "WHERE d.team_id = $1 AND d.distinct_id = 'grace'",
        project.id,
    )
    assert grace == {"email": "grace@example.com"}

    export = await create_export(
        project,
        {"name": "sdk", "interval": "hour", "destination": {"type": "File", "config": {"path": f"sdk-{project.id}"}}},
    )
    end = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=1)
    await start_run(stack, export, start=end - timedelta(hours=1), end=end)
    (run,) = await runs_until(project, export["id"], lambda rs: [r["status"] for r in rs] == ["Completed"])
    assert run["records_completed"] == 3
    (file,) = (project.files / f"sdk-{project.id}").iterdir()
    exported = [json.loads(line) for line in file.read_text().splitlines()]
    assert {row["uuid"] for row in exported} == set(sent)
    assert {row["properties"].get("$lib") for row in exported} == {"posthog-python"}
