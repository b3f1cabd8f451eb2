"""The export activity: read one interval from the source and write it to the destination.

It heartbeats while it works (so a cancel reaches it within seconds) and keeps the run row's
`records_completed` moving, so progress shows in the API while the interval is being written.
"""

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.destinations import DestinationUserError, ensure_allowed_host
from activities.destinations.registry import open_writer
from activities.sources import source_for
from activities.sources.reading import SourceDatabase
from batch_exports import exports, logs, runs
from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings
from workflows.inputs import ExportInputs, ExportResult

PROGRESS_EVERY_SECONDS = 2.0


@dataclass
class Progress:
    records: int = 0
    bytes: int = 0


class Exporter:
    def __init__(self, pool: asyncpg.Pool, source: SourceDatabase, cipher: ConfigCipher, settings: Settings):
        self.pool = pool
        self.source = source
        self.cipher = cipher
        self.settings = settings

    @activity.defn(name="export-interval")
    async def export_interval(self, inputs: ExportInputs) -> ExportResult:
        run_id = uuid.UUID(inputs.run_id)
        export = await exports.get(self.pool, uuid.UUID(inputs.batch_export_id), self.cipher)
        if export is None:
            raise ApplicationError(
                f"batch export {inputs.batch_export_id} no longer exists",
                type="BatchExportNotFound",
                non_retryable=True,
            )
        await runs.update_progress(self.pool, run_id, status=runs.RunStatus.RUNNING)
        progress = Progress()
        last: str | None = None
        try:
            async with self._reporting(run_id, progress):
                await ensure_allowed_host(export.destination_config, self.settings.allow_private_destinations)
                writer = open_writer(
                    export,
                    self.settings,
                    inputs.data_interval_start,
                    inputs.data_interval_end,
                    inputs.segment,
                )
                try:
                    source = source_for(export, self.source)
                    batches = source.read(
                        inputs.data_interval_start,
                        inputs.data_interval_end,
                        after=inputs.cursor,
                        limit=inputs.max_records,
                    )
                    async for batch in batches:
                        await writer.write(batch.data)
                        progress.records += batch.data.num_rows
                        progress.bytes = writer.bytes_written
                        last = batch.position
                    await writer.commit()
                except BaseException:
                    await asyncio.shield(writer.abort())
                    raise
        except DestinationUserError as error:
            raise ApplicationError(str(error), type="DestinationUserError", non_retryable=True) from error
        except Exception as error:
            # Temporal retries it; the run stays Running and shows what went wrong this attempt.
            message = f"{type(error).__name__}: {error}"
            await runs.update_progress(self.pool, run_id, latest_error=message)
            info = activity.info()
            await logs.write(
                self.pool,
                team_id=export.team_id,
                batch_export_id=export.id,
                run_id=run_id,
                workflow_run_id=info.workflow_run_id,
                level=logs.Level.WARNING,
                message=f"Export attempt {info.attempt} failed: {message}",
            )
            raise
        # At the record limit the execution stops here; the next one resumes after the last record.
        at_limit = inputs.max_records and progress.records >= inputs.max_records
        cursor = last if at_limit else None
        return ExportResult(records_completed=progress.records, bytes_exported=progress.bytes, cursor=cursor)

    @contextlib.asynccontextmanager
    async def _reporting(self, run_id: uuid.UUID, progress: Progress) -> AsyncIterator[None]:
        """Heartbeat and publish progress in the background until the block ends."""

        async def report() -> None:
            reported = -1
            while True:
                activity.heartbeat(progress.records)
                if progress.records != reported:
                    try:
                        await runs.update_progress(
                            self.pool, run_id, records_completed=progress.records, bytes_exported=progress.bytes
                        )
                        reported = progress.records
                    except (OSError, asyncpg.PostgresError) as error:  # progress is best effort; the export goes on
                        activity.logger.warning("could not record progress: %s", error)
                await asyncio.sleep(PROGRESS_EVERY_SECONDS)

        task = asyncio.create_task(report())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
