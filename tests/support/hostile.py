"""What the attacker's tests share: a key that may only write, and export bodies to point somewhere."""

import uuid
from typing import Any

from batch_exports.store import api_keys
from tests.support.stack import Project

NOOP = {"name": "n", "interval": "hour", "destination": {"type": "NoOp"}}


async def write_only_key(project: Project) -> str:
    key = f"phx_writer_{uuid.uuid4().hex}"
    await api_keys.ensure(project.stack.pool, key, label="writer", scopes=(api_keys.WRITE,), project_ids=[project.id])
    return key


def destination(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    return {"name": kind, "interval": "hour", "destination": {"type": kind, "config": config}}
