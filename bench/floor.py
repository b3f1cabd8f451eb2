"""Temporal's own floor for the backfill benchmark: bare workflows, each with one no-op activity.

`FloorWorkflow` starts `count` children the way the backfill workflow starts its runs (child workflows, at
most `concurrency` at once, oldest first, continuing as new every 500), and each child runs one activity that
does nothing. No search attributes, no bookkeeping, no SQL, no destination: what is left is what Temporal
itself costs per interval on this server, and a backfill can only approach it.
"""

import asyncio
from dataclasses import dataclass, replace
from datetime import timedelta

from temporalio import activity, workflow

FLOOR_WORKFLOW = "bench-floor"
FLOOR_CHILD_WORKFLOW = "bench-floor-child"
CHILDREN_PER_EXECUTION = 500
"""As many as the backfill starts before it continues as new."""


@dataclass(frozen=True)
class FloorInputs:
    prefix: str
    count: int
    concurrency: int
    started: int = 0


@activity.defn(name="bench-noop")
async def noop() -> None:
    return None


@workflow.defn(name=FLOOR_CHILD_WORKFLOW)
class FloorChildWorkflow:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_activity(noop, start_to_close_timeout=timedelta(minutes=1))


@workflow.defn(name=FLOOR_WORKFLOW)
class FloorWorkflow:
    @workflow.run
    async def run(self, inputs: FloorInputs) -> None:
        running: list[asyncio.Task[None]] = []
        for index in range(inputs.started, inputs.count):
            while len(running) >= inputs.concurrency:
                done, _ = await workflow.wait(running, return_when=asyncio.FIRST_COMPLETED)
                running = [task for task in running if task not in done]
            running.append(
                asyncio.create_task(
                    workflow.execute_child_workflow(FloorChildWorkflow.run, id=f"{inputs.prefix}-{index}")
                )
            )
            if index + 1 - inputs.started >= CHILDREN_PER_EXECUTION and index + 1 < inputs.count:
                await workflow.wait(running)
                workflow.continue_as_new(replace(inputs, started=index + 1))
        if running:
            await workflow.wait(running)
