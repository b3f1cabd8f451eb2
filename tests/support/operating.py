"""What the operator tests share: the `temporal` CLI against the test server, File exports and what they wrote,
and an export's logs."""

import json
import os
from typing import Any

from tests.support.helpers import temporal_cli_run
from tests.support.stack import Project


def cli(*args: str) -> str:
    return temporal_cli_run(*args, address=os.environ["TEMPORAL_ADDRESS"])


def file_export(path: str, interval: str = "hour", **fields: Any) -> dict[str, Any]:
    return {"name": path, "interval": interval, "destination": {"type": "File", "config": {"path": path}}, **fields}


def exported_uuids(project: Project, path: str) -> list[str]:
    directory = project.files / path
    files = sorted(directory.glob("*.jsonl")) if directory.exists() else []
    return [json.loads(line)["uuid"] for file in files for line in file.read_text().splitlines()]


async def logs_of(project: Project, export_id: str) -> list[str]:
    status, body = await project.request("GET", f"batch_exports/{export_id}/logs/", params={"limit": "100"})
    assert status == 200, body
    return [entry["message"] for entry in body["results"]]
