"""Bookkeeping activities: a run records itself when it starts and how it ended when it finishes."""

import uuid

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from batch_exports import logs, runs
from batch_exports.settings import Settings
from workflows.inputs import FinishRunInputs, StartedRun, StartRunInputs


class Bookkeeping:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.settings = settings

    @activity.defn(name="start-run")
    async def start_run(self, inputs: StartRunInputs) -> StartedRun:
        export_id = uuid.UUID(inputs.batch_export_id)
        team_id = await self.pool.fetchval("SELECT team_id FROM batch_exports WHERE id = $1 AND NOT deleted", export_id)
        if team_id is None:
            raise ApplicationError(
                f"batch export {export_id} no longer exists", type="BatchExportNotFound", non_retryable=True
            )
        run_id = await runs.start(
            self.pool,
            batch_export_id=export_id,
            workflow_id=inputs.workflow_id,
            workflow_run_id=inputs.workflow_run_id,
            data_interval_start=inputs.data_interval_start,
            data_interval_end=inputs.data_interval_end,
            backfill_id=uuid.UUID(inputs.backfill_id) if inputs.backfill_id else None,
        )
        await logs.write(
            self.pool,
            team_id=team_id,
            batch_export_id=export_id,
            run_id=run_id,
            workflow_run_id=inputs.workflow_run_id,
            level=logs.Level.INFO,
            message=f"Run started for interval {inputs.data_interval_start.isoformat()} to "
            f"{inputs.data_interval_end.isoformat()}",
        )
        return StartedRun(run_id=str(run_id), settle_delay_seconds=self.settings.settle_delay_seconds)

    @activity.defn(name="finish-run")
    async def finish_run(self, inputs: FinishRunInputs) -> None:
        status = runs.RunStatus(inputs.status)
        run_id = uuid.UUID(inputs.run_id)
        await runs.finish(
            self.pool,
            run_id,
            status=status,
            records_completed=inputs.records_completed,
            bytes_exported=inputs.bytes_exported,
            latest_error=inputs.latest_error,
        )
        message = f"Run {status.value}"
        if inputs.records_completed is not None:
            message += f": {inputs.records_completed} records exported"
        if inputs.latest_error:
            message += f": {inputs.latest_error}"
        await logs.write(
            self.pool,
            team_id=inputs.team_id,
            batch_export_id=uuid.UUID(inputs.batch_export_id),
            run_id=run_id,
            workflow_run_id=activity.info().workflow_run_id,
            level=logs.Level.INFO if status is runs.RunStatus.COMPLETED else logs.Level.ERROR,
            message=message,
        )
