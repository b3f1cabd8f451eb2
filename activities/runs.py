"""Bookkeeping activities: a run records itself when it starts and how it ended when it finishes.

They run as local activities of the run workflow: a few SQL statements, no task-queue round trip.
"""

import uuid

from temporalio import activity
from temporalio.exceptions import ApplicationError

from batch_exports.runtime import Runtime
from batch_exports.services import lifecycle
from batch_exports.store import exports, logs, runs
from batch_exports.temporal.client import TemporalUnavailable
from contracts.statuses import RunStatus
from contracts.workflows import FinishRunInputs, StartedRun, StartRunInputs


class RunBookkeeping:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="start-run")
    async def start_run(self, inputs: StartRunInputs) -> StartedRun:
        export_id = uuid.UUID(inputs.batch_export_id)
        team_id = await exports.team_of(self.rt.pool, export_id, include_deleted=False)
        if team_id is None:
            raise ApplicationError(
                f"batch export {export_id} no longer exists", type="BatchExportNotFound", non_retryable=True
            )
        start = inputs.data_interval_start
        run_id = await runs.start(
            self.rt.pool,
            batch_export_id=export_id,
            workflow_id=inputs.workflow_id,
            workflow_run_id=inputs.workflow_run_id,
            data_interval_start=start,
            data_interval_end=inputs.data_interval_end,
            backfill_id=uuid.UUID(inputs.backfill_id) if inputs.backfill_id else None,
        )
        resumed = f", resuming after {inputs.cursor}" if inputs.cursor else ""
        await logs.write(
            self.rt.pool,
            team_id=team_id,
            batch_export_id=export_id,
            run_id=run_id,
            workflow_run_id=inputs.workflow_run_id,
            level=logs.Level.INFO,
            message=f"Run started for interval {start.isoformat()} to {inputs.data_interval_end.isoformat()}{resumed}",
        )
        s = self.rt.settings
        return StartedRun(
            run_id=str(run_id),
            settle_delay_seconds=s.settle_delay_seconds,
            export_max_attempts=s.export_max_attempts,
            export_retry_initial_seconds=s.export_retry_initial_seconds,
            max_records_per_execution=s.max_records_per_execution,
        )

    @activity.defn(name="finish-run")
    async def finish_run(self, inputs: FinishRunInputs) -> None:
        status = RunStatus(inputs.status)
        run_id = uuid.UUID(inputs.run_id)
        export_id = uuid.UUID(inputs.batch_export_id)
        await runs.finish(
            self.rt.pool,
            run_id,
            status=status,
            records_completed=inputs.records_completed,
            bytes_exported=inputs.bytes_exported,
            latest_error=inputs.latest_error,
            cursor=inputs.cursor,
        )
        message = f"Run {status.value}"
        if inputs.records_completed is not None:
            message += f": {inputs.records_completed} records exported"
        if inputs.cursor:
            message += f"; the next execution resumes after {inputs.cursor}"
        if inputs.latest_error:
            message += f": {inputs.latest_error}"
        ok = status in (RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW)
        await logs.write(
            self.rt.pool,
            team_id=inputs.team_id,
            batch_export_id=export_id,
            run_id=run_id,
            workflow_run_id=activity.info().workflow_run_id,
            level=logs.Level.INFO if ok else logs.Level.ERROR,
            message=message,
        )
        if status is RunStatus.FAILED:
            try:
                await lifecycle.pause_if_failing(self.rt, export_id)
            except TemporalUnavailable as error:  # the run's own books are written; the next failure tries again
                activity.logger.warning("could not auto-pause export %s: %s", export_id, error)
