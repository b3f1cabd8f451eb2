"""Temporal's own floor for the backfill benchmark: bare workflows, each with one no-op activity.

`FloorWorkflow` starts `count` children the way the backfill workflow starts its runs (child workflows, at
most `concurrency` at once, oldest first, continuing as new every 500), and each child runs one activity that
does nothing. No search attributes, no bookkeeping, no SQL, no destination: what is left is what Temporal
itself costs per interval on this server, and a backfill can only approach it.

`dressed` floors are children with everything the contract asks of a run and nothing of ours: the search
attributes, the static summary, the execution timeout and retry policy of a run, a local activity before and
after, and the activity's heartbeat timeout. The backfill minus the dressed floor is what the service's own code
costs; the dressed floor minus the bare one is what those Temporal features cost.
"""

import asyncio
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy

with workflow.unsafe.imports_passed_through():
    from contracts.intervals import Interval
    from contracts.search_attributes import search_attributes
    from contracts.timeouts import execution_timeout, export_timeout

FLOOR_WORKFLOW = "bench-floor"
FLOOR_CHILD_WORKFLOW = "bench-floor-child"
CHILDREN_PER_EXECUTION = 500
"""As many as the backfill starts before it continues as new."""


@dataclass(frozen=True)
class FloorInputs:
    prefix: str
    count: int
    concurrency: int
    dressed: bool = False
    started: int = 0


@activity.defn(name="bench-noop")
async def noop() -> None:
    return None


@workflow.defn(name=FLOOR_CHILD_WORKFLOW)
class FloorChildWorkflow:
    @workflow.run
    async def run(self, dressed: bool) -> None:
        if not dressed:
            await workflow.execute_activity(noop, start_to_close_timeout=timedelta(minutes=1))
            return
        await workflow.execute_local_activity(noop, start_to_close_timeout=timedelta(seconds=30))
        await workflow.execute_activity(
            noop,
            start_to_close_timeout=export_timeout(Interval.HOUR),
            heartbeat_timeout=timedelta(seconds=20),
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
            retry_policy=RetryPolicy(maximum_attempts=10),
        )
        await workflow.execute_local_activity(noop, start_to_close_timeout=timedelta(seconds=30))


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    @workflow.run
    async def run(self, inputs: FloorInputs) -> None:
        running: list[asyncio.Task[None]] = []
        for index in range(inputs.started, inputs.count):
            while len(running) >= inputs.concurrency:
                done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running = [task for task in running if task not in done]
            running.append(asyncio.create_task(self._child(inputs, index)))
            if index + 1 - inputs.started >= CHILDREN_PER_EXECUTION and index + 1 < inputs.count:
                await workflow.wait(running)
                workflow.continue_as_new(replace(inputs, started=index + 1))
        if running:
            await workflow.wait(running)

    async def _child(self, inputs: FloorInputs, index: int) -> None:
        child_id = f"{inputs.prefix}-{index}"
        if not inputs.dressed:
            await workflow.execute_child_workflow(FloorChildWorkflow.run, False, id=child_id)
            return
        end = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(hours=index + 1)
        await workflow.execute_child_workflow(
            FloorChildWorkflow.run,
            True,
            id=child_id,
            execution_timeout=execution_timeout(Interval.HOUR),
            retry_policy=RetryPolicy(initial_interval=timedelta(seconds=60), maximum_attempts=3),
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            parent_close_policy=workflow.ParentClosePolicy.REQUEST_CANCEL,
            search_attributes=search_attributes(
                inputs.prefix, 1, "NoOp", backfill_id=inputs.prefix, interval=(end - timedelta(hours=1), end)
            ),
            static_summary=f"Backfill run {(end - timedelta(hours=1)).isoformat()} to {end.isoformat()}",
        )
