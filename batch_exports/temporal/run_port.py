"""The run domain's Temporal port (`batch_exports.runs.ports.Temporal`) over the Temporal client."""

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from batch_exports.exports.export import BatchExport
from batch_exports.runs.ports import Unreachable
from batch_exports.runs.run import Backfill
from batch_exports.runs.statuses import Closed
from batch_exports.settings import Settings
from batch_exports.temporal import schedules
from batch_exports.temporal.client import calling_temporal, cancel_workflow, reset_base
from contracts.intervals import DataInterval


class TemporalRuns:
    def __init__(
        self, client: Client, settings: Settings, export: Callable[[uuid.UUID], Awaitable[BatchExport | None]]
    ) -> None:
        self.client, self.settings, self.export = client, settings, export

    async def closed_as(self, workflow_id: str, run_id: str | None) -> Closed | None:
        return await closed_as(self.client, workflow_id, run_id)

    async def reset_base(self, workflow_id: str, run_id: str) -> str | None:
        try:
            return await reset_base(self.client, workflow_id, run_id)
        except RPCError as error:
            raise Unreachable(str(error)) from error

    async def start_interval_run(self, export_id: uuid.UUID, start: datetime, end: datetime) -> bool:
        export = await self.export(export_id)
        if export is None:
            return False
        return await schedules.start_interval_run(self.client, self.settings, export, DataInterval(start, end))

    async def pause_schedule(self, export_id: uuid.UUID, note: str) -> None:
        async with calling_temporal("pause the export's schedule"):
            await self.client.get_schedule_handle(str(export_id)).pause(note=note)

    async def cancel_backfill(self, backfill: Backfill, reason: str) -> bool:
        """Ask the backfill workflow to stop (it cancels its runs, waits for them, and records `Cancelled` itself)."""
        return bool(backfill.workflow_id) and await cancel_workflow(
            self.client, backfill.workflow_id or "", reason=reason
        )


async def closed_as(client: Client, workflow_id: str, run_id: str | None) -> Closed | None:
    """How the execution closed (FAILED when Temporal no longer knows it), or None while it runs."""
    try:
        described = await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
    except RPCError as error:
        if error.status != RPCStatusCode.NOT_FOUND:
            raise
        return Closed.FAILED  # gone from Temporal (retention) without a word: it did not complete
    if described.status is None or described.status == WorkflowExecutionStatus.RUNNING:
        return None
    return Closed(described.status.name)
