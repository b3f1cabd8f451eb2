"""Bookkeeping of backfills: their row moves from `Starting` to `Running` to how they ended."""

import asyncio
import contextlib
import uuid
from datetime import datetime

from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from batch_exports.runs import backfills as finishing
from batch_exports.runtime import Runtime
from batch_exports.store import backfills, exports, runs
from batch_exports.temporal.client import TemporalUnavailable, cancel_workflow
from connectors.sources import open_source
from contracts.workflows import CancelRunsInputs, FinishBackfillInputs, IntervalRunsInputs, StartBackfillInputs

WAIT_POLL_SECONDS = 2.0


class BackfillBookkeeping:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="start-backfill")
    async def start_backfill(self, inputs: StartBackfillInputs) -> None:
        """Mark the backfill Running, with how many runs and (an estimate of) how many records it has."""
        backfill_id = uuid.UUID(inputs.backfill_id)
        backfill = await backfills.get(self.rt.pool, backfill_id)
        if backfill is None:  # the request that started this backfill has not committed its row yet
            raise ApplicationError(f"backfill {backfill_id} is not recorded yet", type="BackfillNotRecorded")
        export = await exports.get(self.rt.pool, backfill.batch_export_id, self.rt.cipher, include_deleted=True)
        records = None
        if export is not None and backfill.start_at and backfill.end_at:
            source = open_source(self.rt.source, export.team_id, export.model, export.selection())
            records = await source.count(backfill.start_at, backfill.end_at)
        await backfills.mark_running(self.rt.pool, backfill_id, inputs.total_runs, records)

    @activity.defn(name="intervals-with-runs")
    async def intervals_with_runs(self, inputs: IntervalRunsInputs) -> list[datetime]:
        """The ends of the intervals in `(after, through]` that have a run (of any status)."""
        ends = await runs.interval_ends(self.rt.pool, uuid.UUID(inputs.batch_export_id), inputs.after, inputs.through)
        return sorted(ends)

    @activity.defn(name="finish-backfill")
    async def finish_backfill(self, inputs: FinishBackfillInputs) -> None:
        await finishing.finish_backfill(self.rt.run_book, uuid.UUID(inputs.backfill_id), inputs.status)

    @activity.defn(name="cancel-runs")
    async def cancel_runs(self, inputs: CancelRunsInputs) -> None:
        """Cancel the latest execution of each workflow id (one a retry policy is about to start included)."""
        for workflow_id in inputs.workflow_ids:
            with contextlib.suppress(TemporalUnavailable):  # one gone or unreachable: the others still
                await cancel_workflow(self.rt.client, workflow_id, reason=inputs.reason)

    @activity.defn(name="wait-for-workflow")
    async def wait_for_workflow(self, workflow_id: str) -> bool:
        """Wait until the running execution of `workflow_id` (the latest of a continued chain) has closed; True
        when it completed."""
        handle = self.rt.client.get_workflow_handle(workflow_id)
        while (status := (await handle.describe()).status) == WorkflowExecutionStatus.RUNNING:
            activity.heartbeat()
            await asyncio.sleep(WAIT_POLL_SECONDS)
        return status == WorkflowExecutionStatus.COMPLETED
