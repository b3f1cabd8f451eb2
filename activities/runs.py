"""Bookkeeping activities: a run records itself when it starts and how it ended when it finishes.

Adapters of the run domain (`batch_exports.runs.lifecycle`): they decode the workflow's contract, call the rule with
the run book and the Temporal port, and encode the answer. They run as local activities of the run workflow: a few
SQL statements, no task-queue round trip.
"""

from temporalio import activity
from temporalio.exceptions import ApplicationError

from batch_exports.runs import lifecycle
from batch_exports.runs.lifecycle import ExportGone
from batch_exports.runtime import Runtime
from batch_exports.telemetry.logs import log_context
from contracts.workflows import FinishRunInputs, HandOverInputs, StartedRun, StartRunInputs


def _gone(error: ExportGone) -> ApplicationError:
    return ApplicationError(str(error), type="BatchExportNotFound", non_retryable=True)


class RunBookkeeping:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="start-run")
    async def start_run(self, inputs: StartRunInputs) -> StartedRun:
        s = self.rt.settings
        settings = StartedRun(
            run_id="",
            settle_delay_seconds=s.settle_delay_seconds,
            export_max_attempts=s.export_max_attempts,
            export_retry_initial_seconds=s.export_retry_initial_seconds,
            max_records_per_execution=s.max_records_per_execution,
            export_heartbeat_timeout_seconds=s.export_heartbeat_timeout_seconds,
        )
        try:
            started = await lifecycle.start_run(
                self.rt.run_book, self.rt.run_temporal, inputs, settings, activity.logger
            )
        except ExportGone as error:
            raise _gone(error) from None
        if started.said:
            with log_context(run_id=started.run.run_id):
                activity.logger.info("%s", started.said)
        return started.run

    @activity.defn(name="hand-over")
    async def hand_over(self, inputs: HandOverInputs) -> str:
        """A fire between boundaries: start the last whole interval's own execution, unless it has a run."""
        try:
            return await lifecycle.hand_over(self.rt.run_book, self.rt.run_temporal, inputs)
        except ExportGone as error:
            raise _gone(error) from None

    @activity.defn(name="finish-run")
    async def finish_run(self, inputs: FinishRunInputs) -> str | None:
        """Record how the run ended; the notice it calls for, if any (`run_failed`, `auto_paused`, `recovered`):
        none for a project without notification targets, so that such a run schedules no activity more."""
        return await record_end(self.rt, inputs)


async def record_end(rt: Runtime, inputs: FinishRunInputs) -> str | None:
    """Record how the run ended (in the activity at hand: `finish-run`, or the export that ended it); the notice it
    calls for, if any."""
    finished = await lifecycle.finish_run(
        rt.run_book,
        rt.run_temporal,
        inputs,
        workflow_run_id=activity.info().workflow_run_id,
        auto_pause_after=rt.settings.auto_pause_after_failures,
        logger=activity.logger,
    )
    if finished.run is not None:
        rt.metrics.run_finished(finished.run)
    if finished.auto_paused:
        rt.metrics.export_paused_automatically()
    return finished.notice
