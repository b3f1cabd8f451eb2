"""The export activity: read one interval from the source and write it to the destination.

It heartbeats while it works (so a cancel reaches it within seconds), and checkpoints each step the
destination holds for good (`activities.attempts`), which is also what the run's `records_completed` shows:
it never goes down, even when an attempt is lost. When its worker shuts down it stops at the next checkpoint
(or, at the end of the grace period, at the last one) and the next attempt resumes from there.
"""

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from activities.admission import FIRST_WAIT_SECONDS, ProjectSlots
from activities.attempts import Attempt, Checkpoint, WorkerShutdown
from activities.runs import record_end
from batch_exports.exports.export import BatchExport
from batch_exports.runs.attempts import BOOKKEEPING_SECONDS
from batch_exports.runs.statuses import export_ended
from batch_exports.runtime import Runtime
from batch_exports.store import exports
from connectors.destinations import Context, WriteRequest, ensure_allowed_host, open_writer
from connectors.sources import BatchSize, open_source
from contracts.workflows import EXPORT_PROGRESS_SIGNAL, ExportInputs, ExportProgress, ExportResult, FinishRunInputs

HEARTBEAT_EVERY_SECONDS = 2.0
TELL_THE_RUN_EVERY = 5
"""Progress reaches the run workflow's current details every this many heartbeats (an event in its history
each time, so not at every one)."""


class Exporter:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.slots = ProjectSlots(
            rt.settings.max_concurrent_exports_per_project, rt.settings.worker_max_concurrent_activities
        )

    @activity.defn(name="export-interval")
    async def export_interval(self, inputs: ExportInputs) -> ExportResult:
        attempt = Attempt(self.rt, uuid.UUID(inputs.run_id), uuid.UUID(inputs.batch_export_id), inputs.max_attempts)
        try:
            export = await exports.get(self.rt.pool, attempt.batch_export_id, self.rt.cipher)
            if export is None:
                raise ApplicationError(
                    f"batch export {inputs.batch_export_id} no longer exists",
                    type="BatchExportNotFound",
                    non_retryable=True,
                )
            await attempt.ensure_attempts_left(export)
            async with self.slots.taken(export.team_id, _slot_wait_seconds()):  # or give the activity slot back
                start = await attempt.begin(export)
                written = Checkpoint(records=start.records, bytes=start.bytes)  # so far, if not all for good yet
                context = self.rt.destinations.for_project(export.team_id)
                began = time.monotonic()
                async with self._heartbeating(attempt, written):
                    await ensure_allowed_host(export.destination_config, context)
                    result = await self._write(export, inputs, attempt, start, written, context)
            self.rt.metrics.exported(export.destination_type, result, seconds=time.monotonic() - began)
        except BaseException as error:
            outcome = await attempt.end(error)
            if outcome is error:
                raise
            raise outcome from None  # the cause's own words could hold a secret (`Attempt.end` redacts them)
        return await self._ended(inputs, export.team_id, result) if inputs.record_end else result

    async def _ended(self, inputs: ExportInputs, team_id: int, result: ExportResult) -> ExportResult:
        """`result`, with the run's end recorded (`Completed`, or `ContinuedAsNew` at the record limit) as the
        finish-run local activity would: the run workflow then schedules no local activity for it, which saved a
        workflow task and an activity task per run. Books out of reach leave the end to the workflow (whose local
        activity retries), never fail an export whose data is in the destination."""
        ending = FinishRunInputs(
            inputs.run_id,
            inputs.batch_export_id,
            team_id,
            export_ended(result.cursor),
            records_completed=result.records_completed,
            bytes_exported=result.bytes_exported,
            cursor=result.cursor,
        )
        try:
            async with asyncio.timeout(BOOKKEEPING_SECONDS):
                notice = await record_end(self.rt, ending)
        except Exception as error:
            activity.logger.warning("the run's end is left to the run workflow: %s", error)
            return result
        return replace(result, ended=True, notice=notice)

    async def _write(
        self,
        export: BatchExport,
        inputs: ExportInputs,
        attempt: Attempt,
        start: Checkpoint,
        written: Checkpoint,
        context: Context,
    ) -> ExportResult:
        """Copy the interval (after `start`) from the source to the destination, checkpointing whenever the
        destination says everything so far is there for good, and counting what it wrote in `written`."""
        request = WriteRequest(
            context=context,
            model=export.model,
            custom_columns=export.hogql_query is not None,
            start=inputs.data_interval_start,
            end=inputs.data_interval_end,
            first_file=inputs.first_file + start.files,
            batch_export_id=inputs.batch_export_id,
            run_id=inputs.run_id,
            attempt=attempt.number,
        )
        writer = open_writer(export.destination_type, export.destination_config, request)
        last, records = start.position, start.records
        remaining = inputs.max_records - start.records if inputs.max_records else 0
        try:
            if not inputs.max_records or remaining > 0:
                source = open_source(self.rt.source, export.team_id, export.model, export.selection())
                read = source.read(
                    inputs.data_interval_start,
                    inputs.data_interval_end,
                    after=start.position or inputs.cursor,
                    limit=remaining,
                    size=BatchSize(writer.batch_bytes, writer.batch_rows),
                )
                async with contextlib.aclosing(read) as batches:
                    async for batch in batches:
                        durable = await batches.guard(writer.write(batch.data))  # a failed read ends it at once
                        records += batch.data.num_rows
                        last = batch.position
                        written.records, written.bytes = records, start.bytes + writer.bytes_written
                        if durable:
                            await attempt.checkpoint(
                                Checkpoint(
                                    last, start.files + writer.files, records, start.bytes + writer.bytes_written
                                )
                            )
                            if activity.is_worker_shutdown():
                                raise WorkerShutdown()
            # At the record limit the execution stops here; the next one resumes after the last record.
            at_limit = bool(inputs.max_records) and records >= inputs.max_records
            await writer.commit(final=not at_limit)
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        return ExportResult(
            records_completed=records,
            bytes_exported=start.bytes + writer.bytes_written,
            cursor=last if at_limit else None,
            files=start.files + writer.files,
        )

    @contextlib.asynccontextmanager
    async def _heartbeating(self, attempt: Attempt, written: Checkpoint) -> AsyncIterator[None]:
        """Heartbeat the last checkpoint in the background until the block ends, and tell the run (for its details
        in the UI) how much has been written."""
        info = activity.info()
        run = self.rt.client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)

        async def beat() -> None:
            # Nothing before the first tick: an export that ends within it (most intervals of a backfill) costs
            # no heartbeat and no signal (each a write on the server); its result says it all.
            told, beats = 0, 0
            while True:
                await asyncio.sleep(HEARTBEAT_EVERY_SECONDS)
                activity.heartbeat(attempt.beat())
                if beats % TELL_THE_RUN_EVERY == 0 and written.records != told:
                    with contextlib.suppress(RPCError, RuntimeError):
                        await run.signal(EXPORT_PROGRESS_SIGNAL, ExportProgress(written.records, written.bytes))
                        told = written.records
                beats += 1

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _slot_wait_seconds() -> float:
    """How long an attempt over its project's share may wait for a slot: no longer than its retry would take to come
    back, and within half its heartbeat timeout (it heartbeats only once it runs)."""
    timeout = activity.info().heartbeat_timeout
    return min(FIRST_WAIT_SECONDS, timeout.total_seconds() / 2) if timeout else FIRST_WAIT_SECONDS
