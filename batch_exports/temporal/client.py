"""The Temporal client, configured the way Temporal users expect, and how its failures reach callers."""

import contextlib
from collections.abc import AsyncIterator

from temporalio.client import Client
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode


async def connect(*, lazy: bool = False) -> Client:
    """Connect with `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_PROFILE`, ... (temporalio.envconfig).

    A lazy client connects on first use, so a gateway can start (and report) while Temporal is down.
    """
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", "localhost:7233")
    return await Client.connect(**config, lazy=lazy)


class TemporalUnavailable(Exception):
    """Temporal refused or could not be reached; the change it was part of has been undone."""


@contextlib.asynccontextmanager
async def calling_temporal(action: str) -> AsyncIterator[None]:
    """Turn a Temporal failure inside the block into `TemporalUnavailable`, saying what could not be done."""
    try:
        yield
    except (RPCError, RuntimeError) as error:
        message = f"Temporal could not {action}, so nothing was changed; try again ({error})"
        raise TemporalUnavailable(message) from error


def is_not_found(error: RPCError) -> bool:
    return error.status == RPCStatusCode.NOT_FOUND


async def cancel_workflow(client: Client, workflow_id: str, run_id: str | None = None) -> bool:
    """Request cancellation; False when the execution has already closed. Other failures: TemporalUnavailable."""
    try:
        async with calling_temporal("cancel the workflow"):
            await client.get_workflow_handle(workflow_id, run_id=run_id).cancel()
    except TemporalUnavailable as error:
        if isinstance(error.__cause__, RPCError) and is_not_found(error.__cause__):
            return False
        raise
    return True
