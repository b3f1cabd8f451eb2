"""Bookkeeping of backfills: their row moves from `Starting` to `Running` to how they ended."""

import asyncio
import uuid

import asyncpg
from temporalio import activity
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from activities.sources import source_for
from activities.sources.reading import SourceDatabase
from batch_exports import backfills, exports
from batch_exports.crypto import ConfigCipher
from workflows.inputs import FinishBackfillInputs, StartBackfillInputs

WAIT_POLL_SECONDS = 2.0


class BackfillBookkeeping:
    def __init__(self, pool: asyncpg.Pool, source: SourceDatabase, client: Client, cipher: ConfigCipher) -> None:
        self.pool = pool
        self.source = source
        self.client = client
        self.cipher = cipher

    @activity.defn(name="start-backfill")
    async def start_backfill(self, inputs: StartBackfillInputs) -> None:
        """Mark the backfill Running, with how many runs and (an estimate of) how many records it has."""
        backfill_id = uuid.UUID(inputs.backfill_id)
        row = await self.pool.fetchrow(
            "SELECT batch_export_id, start_at, end_at FROM batch_export_backfills WHERE id = $1", backfill_id
        )
        if row is None:  # the request that started this backfill has not committed its row yet
            raise ApplicationError(f"backfill {backfill_id} is not recorded yet", type="BackfillNotRecorded")
        export = await exports.get(self.pool, row["batch_export_id"], self.cipher, include_deleted=True)
        records = None
        if export is not None:
            records = await source_for(export, self.source).count(row["start_at"], row["end_at"])
        await self.pool.execute(
            """
            UPDATE batch_export_backfills
            SET status = 'Running', total_runs = $2, total_records_count = $3, last_updated_at = now()
            WHERE id = $1 AND status = 'Starting'
            """,
            backfill_id,
            inputs.total_runs,
            records,
        )

    @activity.defn(name="finish-backfill")
    async def finish_backfill(self, inputs: FinishBackfillInputs) -> None:
        backfill_id = uuid.UUID(inputs.backfill_id)
        await self.pool.execute(
            """
            UPDATE batch_export_backfills
            SET status = $2, finished_runs = $3, finished_at = now(), last_updated_at = now()
            WHERE id = $1
            """,
            backfill_id,
            inputs.status,
            await backfills.finished_runs(self.pool, backfill_id),
        )

    @activity.defn(name="wait-for-workflow")
    async def wait_for_workflow(self, workflow_id: str) -> None:
        """Return once the running execution of `workflow_id` has closed, however it closed."""
        handle = self.client.get_workflow_handle(workflow_id)
        while (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            activity.heartbeat()
            await asyncio.sleep(WAIT_POLL_SECONDS)
