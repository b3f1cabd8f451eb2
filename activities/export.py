"""The export activity: read one interval from the source and write it to the destination.

It heartbeats while it works (so a cancel reaches it within seconds) and keeps the run row's
`records_completed` moving, so progress shows in the API while the interval is being written.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

from batch_exports.runtime import Runtime
from batch_exports.store import exports, logs, runs
from batch_exports.store.exports import BatchExport
from connectors.destinations import DestinationUserError, WriteRequest, ensure_allowed_host, open_writer
from connectors.sources import open_source
from contracts.statuses import RunStatus
from contracts.workflows import EXPORT_PROGRESS_SIGNAL, ExportInputs, ExportProgress, ExportResult

PROGRESS_EVERY_SECONDS = 2.0
TELL_THE_RUN_EVERY = 5
"""Progress reaches the run workflow's current details every this many progress ticks (an event in its history
each time, so not at every tick)."""


@dataclass
class Checkpoint:
    """How far an attempt got, heartbeated: a retried attempt resumes from here (see `resume`).

    Everything up to `position` is in the destination for good, in `files` complete files; `records`
    and `bytes` count what this execution exported, so a resumed attempt never counts a record twice.
    """

    position: str | None = None
    files: int = 0
    records: int = 0
    bytes: int = 0


def resume() -> Checkpoint:
    """The checkpoint of the attempt before this one (of the same activity), or a fresh start."""
    details = activity.info().heartbeat_details
    if details and isinstance(details[0], dict):
        with contextlib.suppress(TypeError):
            return Checkpoint(**details[0])
    return Checkpoint()


class Exporter:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="export-interval")
    async def export_interval(self, inputs: ExportInputs) -> ExportResult:
        run_id = uuid.UUID(inputs.run_id)
        export = await exports.get(self.rt.pool, uuid.UUID(inputs.batch_export_id), self.rt.cipher)
        if export is None:
            raise ApplicationError(
                f"batch export {inputs.batch_export_id} no longer exists",
                type="BatchExportNotFound",
                non_retryable=True,
            )
        await runs.update_progress(self.rt.pool, run_id, status=RunStatus.RUNNING)
        start = resume()
        progress = Checkpoint(**vars(start))  # what this execution has written
        done = Checkpoint(**vars(start))  # what of it is in the destination for good
        try:
            async with self._reporting(run_id, progress, done):
                await ensure_allowed_host(export.destination_config, self.rt.settings.allow_private_destinations)
                result = await self._write(export, inputs, start, progress, done)
        except DestinationUserError as error:
            raise ApplicationError(str(error), type="DestinationUserError", non_retryable=True) from error
        except Exception as error:
            # Temporal retries it; the run stays Running and shows what went wrong this attempt.
            message = f"{type(error).__name__}: {error}"
            await runs.update_progress(self.rt.pool, run_id, latest_error=message)
            info = activity.info()
            await logs.write(
                self.rt.pool,
                team_id=export.team_id,
                batch_export_id=export.id,
                run_id=run_id,
                workflow_run_id=info.workflow_run_id,
                level=logs.Level.WARNING,
                message=f"Export attempt {info.attempt} failed: {message}",
            )
            raise
        return result

    async def _write(
        self, export: BatchExport, inputs: ExportInputs, start: Checkpoint, progress: Checkpoint, done: Checkpoint
    ) -> ExportResult:
        """Copy the interval (after `start`) from the source to the destination, keeping `progress` and
        `done` (heartbeated whenever the destination says everything so far is there for good)."""
        request = WriteRequest(
            context=self.rt.destinations,
            model=export.model,
            custom_columns=export.hogql_query is not None,
            start=inputs.data_interval_start,
            end=inputs.data_interval_end,
            first_file=inputs.first_file + start.files,
        )
        writer = open_writer(export.destination_type, export.destination_config, request)
        last = start.position
        remaining = inputs.max_records - start.records if inputs.max_records else 0
        try:
            if not inputs.max_records or remaining > 0:
                source = open_source(self.rt.source, export.team_id, export.model, export.selection())
                batches = source.read(
                    inputs.data_interval_start,
                    inputs.data_interval_end,
                    after=start.position or inputs.cursor,
                    limit=remaining,
                    batch_bytes=writer.batch_bytes,
                )
                async for batch in batches:
                    durable = await writer.write(batch.data)
                    progress.records += batch.data.num_rows
                    progress.bytes = start.bytes + writer.bytes_written
                    last = batch.position
                    if durable:
                        done.position, done.files = last, start.files + writer.files
                        done.records, done.bytes = progress.records, progress.bytes
                        activity.heartbeat(replace(done))
            # At the record limit the execution stops here; the next one resumes after the last record.
            at_limit = bool(inputs.max_records) and progress.records >= inputs.max_records
            await writer.commit(final=not at_limit)
        except BaseException:
            await asyncio.shield(writer.abort())
            raise
        progress.bytes = start.bytes + writer.bytes_written
        return ExportResult(
            records_completed=progress.records,
            bytes_exported=progress.bytes,
            cursor=last if at_limit else None,
            files=start.files + writer.files,
        )

    @contextlib.asynccontextmanager
    async def _reporting(self, run_id: uuid.UUID, progress: Checkpoint, done: Checkpoint) -> AsyncIterator[None]:
        """Heartbeat and publish progress in the background until the block ends."""

        info = activity.info()
        run = self.rt.client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)

        async def report() -> None:
            reported, told, ticks = -1, -1, 0
            while True:
                activity.heartbeat(replace(done))
                if progress.records != reported:
                    try:
                        await runs.update_progress(
                            self.rt.pool, run_id, records_completed=progress.records, bytes_exported=progress.bytes
                        )
                        reported = progress.records
                    except (OSError, asyncpg.PostgresError) as error:  # progress is best effort; the export goes on
                        activity.logger.warning("could not record progress: %s", error)
                if ticks % TELL_THE_RUN_EVERY == 0 and progress.records != told:  # its details in the UI
                    with contextlib.suppress(RPCError, RuntimeError):
                        await run.signal(EXPORT_PROGRESS_SIGNAL, ExportProgress(progress.records, progress.bytes))
                        told = progress.records
                ticks += 1
                await asyncio.sleep(PROGRESS_EVERY_SECONDS)

        task = asyncio.create_task(report())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
