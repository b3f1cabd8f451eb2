"""Bookkeeping activities: a run records itself when it starts and how it ended when it finishes.

They run as local activities of the run workflow: a few SQL statements, no task-queue round trip.
"""

import asyncio
import logging
import uuid
from dataclasses import replace

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from batch_exports.runtime import Runtime
from batch_exports.services import lifecycle
from batch_exports.store import exports, logs, notifications, runs
from batch_exports.store.notifications import FAILURE_KINDS as FAILURES
from batch_exports.telemetry.logs import log_context
from batch_exports.temporal import schedules
from batch_exports.temporal.client import TemporalUnavailable, reset_base
from contracts.intervals import DataInterval, run_workflow_id
from contracts.statuses import RunStatus
from contracts.workflows import FinishRunInputs, HandOverInputs, StartedRun, StartRunInputs


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
        start, s = inputs.data_interval_start, self.rt.settings
        started = StartedRun(
            run_id="",
            settle_delay_seconds=s.settle_delay_seconds,
            export_max_attempts=s.export_max_attempts,
            export_retry_initial_seconds=s.export_retry_initial_seconds,
            max_records_per_execution=s.max_records_per_execution,
            export_heartbeat_timeout_seconds=s.export_heartbeat_timeout_seconds,
        )
        if inputs.fresh_fire:
            ran = await runs.for_interval(
                self.rt.pool, export_id, inputs.data_interval_end, other_than=inputs.workflow_run_id
            )
            if ran is not None:  # a retry, a backfill or a filled gap got there first
                await logs.write(
                    self.rt.pool,
                    team_id=team_id,
                    batch_export_id=export_id,
                    level=logs.Level.INFO,
                    message=f"The schedule fired for {start.isoformat()} to {inputs.data_interval_end.isoformat()}, "
                    f"which already has a run ({ran.id}, {ran.status.value}): nothing exported again",
                )
                return replace(started, already_run_by=str(ran.id))
        replaced = await self._replaced(inputs) if inputs.reset_from else None
        run_id = await runs.start(
            self.rt.pool,
            batch_export_id=export_id,
            workflow_id=inputs.workflow_id,
            workflow_run_id=inputs.workflow_run_id,
            data_interval_start=start,
            data_interval_end=inputs.data_interval_end,
            backfill_id=uuid.UUID(inputs.backfill_id) if inputs.backfill_id else None,
            replaced_run_id=replaced.id if replaced else None,
        )
        resumed = f", resuming after {inputs.cursor}" if inputs.cursor else ""
        if replaced is not None:
            resumed += f"; a reset of run {replaced.id} (execution {replaced.workflow_run_id})"
        with log_context(run_id=run_id):
            activity.logger.info("run started for %s to %s%s", start, inputs.data_interval_end, resumed)
        await logs.write(
            self.rt.pool,
            team_id=team_id,
            batch_export_id=export_id,
            run_id=run_id,
            workflow_run_id=inputs.workflow_run_id,
            level=logs.Level.INFO,
            message=f"Run started for interval {start.isoformat()} to {inputs.data_interval_end.isoformat()}{resumed}",
        )
        return replace(started, run_id=str(run_id))

    async def _replaced(self, inputs: StartRunInputs) -> runs.Run | None:
        """The row of the execution this one is a reset of."""
        try:
            base = await reset_base(self.rt.client, inputs.workflow_id, inputs.workflow_run_id)
        except RPCError as error:  # the link is worth a log line, not a failed run
            activity.logger.warning("could not read the reset's base run: %s", error)
            return None
        return await runs.by_execution(self.rt.pool, inputs.workflow_id, base) if base else None

    @activity.defn(name="hand-over")
    async def hand_over(self, inputs: HandOverInputs) -> str:
        """A fire between boundaries: start the last whole interval's own execution, unless it has a run."""
        export_id = uuid.UUID(inputs.batch_export_id)
        export = await exports.get(self.rt.pool, export_id, self.rt.cipher)
        if export is None:
            raise ApplicationError(
                f"batch export {export_id} no longer exists", type="BatchExportNotFound", non_retryable=True
            )
        interval = DataInterval(inputs.data_interval_start, inputs.data_interval_end)
        span = f"{interval.start.isoformat()} to {interval.end.isoformat()}"
        ran = await runs.for_interval(self.rt.pool, export_id, interval.end)
        if ran is not None:
            note = f"the last whole interval, {span}, already has a run ({ran.id}, {ran.status.value})"
        elif await schedules.start_interval_run(self.rt.client, self.rt.settings, export, interval):
            note = f"the last whole interval, {span}, runs as {run_workflow_id(str(export_id), interval.end)}"
        else:
            note = f"the last whole interval, {span}, is running already"
        note = f"Fired at {inputs.fired_at.isoformat()}, between boundaries: {note}"
        await logs.write(
            self.rt.pool, team_id=export.team_id, batch_export_id=export_id, level=logs.Level.INFO, message=note
        )
        return note

    @activity.defn(name="finish-run")
    async def finish_run(self, inputs: FinishRunInputs) -> str | None:
        """Record how the run ended; the notice it calls for, if any (`run_failed`, `auto_paused`, `recovered`):
        none for a project without notification targets, so that such a run schedules no activity more."""
        status = RunStatus(inputs.status)
        run_id = uuid.UUID(inputs.run_id)
        export_id = uuid.UUID(inputs.batch_export_id)
        message = f"Run {status.value}"
        if inputs.records_completed is not None:
            message += f": {inputs.records_completed} records exported"
        if inputs.cursor:
            message += f"; the next execution resumes after {inputs.cursor}"
        if inputs.latest_error:
            message += f": {inputs.latest_error}"
        # An operator's cancel is an ending like a completion, not a fault: INFO, as they are.
        ok = status in (RunStatus.COMPLETED, RunStatus.CONTINUED_AS_NEW, RunStatus.CANCELLED)
        activity.logger.log(logging.INFO if ok else logging.WARNING, message)
        # Two independent writes, side by side: this runs inside the workflow's task, which waits for it.
        finished, _ = await asyncio.gather(
            runs.finish(
                self.rt.pool,
                run_id,
                status=status,
                records_completed=inputs.records_completed,
                bytes_exported=inputs.bytes_exported,
                latest_error=inputs.latest_error,
                cursor=inputs.cursor,
            ),
            logs.write(
                self.rt.pool,
                team_id=inputs.team_id,
                batch_export_id=export_id,
                run_id=run_id,
                workflow_run_id=activity.info().workflow_run_id,
                level=logs.Level.INFO if ok else logs.Level.ERROR,
                message=message,
            ),
        )
        if finished is not None:
            self.rt.metrics.run_finished(finished)
        if status is RunStatus.FAILED:
            notice = "run_failed"
            try:
                if await lifecycle.pause_if_failing(self.rt, export_id):
                    notice = "auto_paused"
            except TemporalUnavailable as error:  # the run's own books are written; the next failure tries again
                activity.logger.warning("could not auto-pause export %s: %s", export_id, error)
            return notice if await notifications.count_targets(self.rt.pool, inputs.team_id) else None
        if status is RunStatus.COMPLETED and await notifications.latest_kind(self.rt.pool, export_id) in FAILURES:
            return "recovered"
        return None
