"""The Temporal client, configured the way Temporal users expect, and how its failures reach callers."""

import contextlib
import socket
from collections.abc import AsyncIterator, Sequence

from temporalio.api.enums.v1 import WorkflowTaskFailedCause
from temporalio.client import Client, Interceptor
from temporalio.envconfig import ClientConfig
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode

from batch_exports.runs.ports import Unreachable


async def connect(
    *,
    lazy: bool = False,
    process: str | None = None,
    runtime: Runtime | None = None,
    interceptors: Sequence[Interceptor] = (),
) -> Client:
    """Connect with `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_PROFILE`, ... (temporalio.envconfig).

    A lazy client connects on first use, so a gateway can start (and report) while Temporal is down. What the
    client does (a cancel, a pause) carries the identity `batch-exports-<process>@<host>` in Temporal.
    `runtime` is the process's Temporal runtime (the one serving its metrics); `interceptors` trace calls.
    """
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", "localhost:7233")
    if process:
        identity = f"batch-exports-{process.replace(' ', '-')}@{socket.gethostname()}"
        return await Client.connect(**config, lazy=lazy, identity=identity, runtime=runtime, interceptors=interceptors)
    return await Client.connect(**config, lazy=lazy, runtime=runtime, interceptors=interceptors)


class TemporalUnavailable(Unreachable):
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


async def cancel_workflow(client: Client, workflow_id: str, run_id: str | None = None, *, reason: str = "") -> bool:
    """Request cancellation, saying why; False when the execution has already closed. Other failures:
    TemporalUnavailable."""
    try:
        async with calling_temporal("cancel the workflow"):
            await client.get_workflow_handle(workflow_id, run_id=run_id).cancel(reason=reason)
    except TemporalUnavailable as error:
        if isinstance(error.__cause__, RPCError) and is_not_found(error.__cause__):
            return False
        raise
    return True


async def reset_base(client: Client, workflow_id: str, run_id: str) -> str | None:
    """The execution that `temporal workflow reset` made this one from (its run id), or None.

    Temporal says so only in the new execution's history: the workflow task that the reset failed names
    the base run and the new one (after several resets the copied events of earlier ones come first).
    """
    base = None
    async for event in client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history_events():
        if event.HasField("workflow_task_failed_event_attributes"):
            failed = event.workflow_task_failed_event_attributes
            if failed.cause == WorkflowTaskFailedCause.WORKFLOW_TASK_FAILED_CAUSE_RESET_WORKFLOW and (
                failed.new_run_id == run_id
            ):
                base = failed.base_run_id
    return base
