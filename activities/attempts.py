"""The attempts of a run's export: where each resumes, its checkpoints, and its end in the run's logs.

An attempt resumes from a `Checkpoint`: how far the destination holds the interval for good. Each step the
destination holds for good is heartbeated and also saved in the run's row at once (the heartbeat reaches
Temporal at most every few seconds): a worker killed between heartbeats loses nothing, and an attempt resumes
from the later of the two. The row also fences: an attempt takes the run over when it begins, and an earlier
one still running (its worker cut off from Temporal past the heartbeat timeout) stops at its next step.

The fence and the books are the run domain's (`batch_exports.runs.attempts.Fence`); this adapter reads Temporal's
activity info, heartbeats, and turns what ends an attempt into Temporal's failure.

Whatever ends an attempt leaves it through `Attempt.end`, with every secret value of the destination's config
redacted: the run's `latest_error`, its logs, the Temporal failure and the worker's log lines never hold one,
whatever library wrote the message.

Only the attempts that ran count against the export's `max_attempts`: one that found its project at capacity
(`activities.admission`) gave its slot back before doing anything, and says so in its heartbeat (`throttled`).

Every attempt's end reaches the run's logs once. It writes its own when it can. When it cannot (the database
is down) it hands the words on in its last heartbeat, and the next attempt writes them. An attempt that left
nothing (its worker was killed) is described by the next one, from what Temporal says of it. Bookkeeping that
fails never replaces the error the attempt ends with.
"""

import asyncio
import contextlib
import traceback
import uuid
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, is_cancelled_exception

from activities.admission import ProjectAtCapacity, wait_before_retry
from batch_exports.exports.export import BatchExport
from batch_exports.runs.attempts import BOOKKEEPING_SECONDS, AttemptsExhausted, Checkpoint, Fence, Superseded
from batch_exports.runs.ports import Level
from batch_exports.runtime import Runtime
from connectors.destinations import DestinationUserError
from connectors.sources.reading import SourceTimeout
from contracts.workflows import ATTEMPTS_EXHAUSTED, PROJECT_AT_CAPACITY

__all__ = ["Attempt", "Checkpoint", "WorkerShutdown"]

RESUME_AFTER_SHUTDOWN = timedelta(seconds=1)
"""An attempt stopped by its worker's shutdown is retried this soon (on another worker), not after the backoff."""


class WorkerShutdown(Exception):
    """The worker is shutting down: the attempt stopped at a checkpoint."""


class Attempt:
    """This attempt of the export activity of one run."""

    def __init__(self, rt: Runtime, run_id: uuid.UUID, batch_export_id: uuid.UUID, max_attempts: int = 0) -> None:
        self.rt, self.run_id, self.batch_export_id = rt, run_id, batch_export_id
        info = activity.info()
        self.number = info.attempt
        self.fence = Fence(
            rt.run_book,
            run_id,
            batch_export_id,
            number=info.attempt,
            scheduled=info.current_attempt_scheduled_time,
            previous=_heartbeated(info.heartbeat_details),
            max_attempts=max_attempts,
            workflow_run_id=info.workflow_run_id,
            log=activity.logger,
        )
        self.export: BatchExport | None = None

    def beat(self) -> Checkpoint:
        return self.fence.beat()

    def _knows(self, export: BatchExport) -> None:
        self.export, self.fence.team_id = export, export.team_id

    async def ensure_attempts_left(self, export: BatchExport) -> None:
        """`AttemptsExhausted` when the attempts before used up the export's (they timed out, or their worker
        stopped, so none of them could say it was the last)."""
        self._knows(export)
        if self.fence.exhausted:
            raise AttemptsExhausted(
                f"Export attempt {self.number - 1} {await self._fate_of_previous()}; it was the last of the "
                f"{self.fence.max_attempts} BATCH_EXPORTS_EXPORT_MAX_ATTEMPTS allows"
            )

    async def begin(self, export: BatchExport) -> Checkpoint:
        """Take the run over, record what became of the attempts before, and say where this one resumes."""
        self._knows(export)
        return await self.fence.begin(self._fate_of_previous)

    async def checkpoint(self, done: Checkpoint) -> None:
        """Everything up to `done` is in the destination for good: heartbeat it and save it in the run's row."""
        activity.heartbeat(self.fence.advance(done))
        await self.fence.save()

    def redact(self, message: str) -> str:
        """`message` without any secret value of the export's destination config, nor the egress proxy's."""
        if self.rt.egress is not None:
            message = self.rt.egress.redact(message)
        return self.export.destination_config.redact(message) if self.export else message

    async def end(self, error: BaseException) -> BaseException:
        """Record how the attempt ends (or hand it on); returns what the attempt raises (with no secret in it)."""
        if isinstance(error, Superseded):
            activity.logger.warning("export attempt %s stops: %s", self.number, error)
            return ApplicationError(str(error), type="Superseded")
        if isinstance(error, ProjectAtCapacity):
            return await self._over_capacity(error)
        if isinstance(error, AttemptsExhausted):
            await self._record(str(error), latest_error=str(error))
            return ApplicationError(str(error), type=ATTEMPTS_EXHAUSTED)
        if isinstance(error, DestinationUserError):  # the run fails, with these words
            return ApplicationError(self.redact(str(error)), type="DestinationUserError", non_retryable=True)
        if isinstance(error, SourceTimeout):  # another attempt would run the same query as long
            return ApplicationError(str(error), type="SourceStatementTimeout", non_retryable=True)
        if isinstance(error, ApplicationError) and error.non_retryable:
            return ApplicationError(self.redact(error.message), type=error.type, non_retryable=True)
        if isinstance(error, WorkerShutdown) or (is_cancelled_exception(error) and _worker_shutting_down()):
            done = self.fence.done
            message = "Export attempt interrupted by worker shutdown, resuming from checkpoint"
            message += f" after record {done.records:,}" if done.position else " (from the start)"
            await self._record(f"{message} (attempt {self.number})", level="INFO")
            return ApplicationError(
                message,
                type="WorkerShutdown",
                category=ApplicationErrorCategory.BENIGN,
                next_retry_delay=RESUME_AFTER_SHUTDOWN,
            )
        if is_cancelled_exception(error) or not isinstance(error, Exception):
            return error  # a cancel: the run records it
        reason = self.redact(f"{type(error).__name__}: {error}")
        activity.logger.warning(
            "export attempt %s failed:\n%s",
            self.number,
            self.redact("".join(traceback.format_exception(error)).rstrip()),
        )
        await self._record(f"Export attempt {self.number} failed: {reason}", latest_error=reason)
        if self.fence.last:
            return ApplicationError(reason, type=ATTEMPTS_EXHAUSTED)  # the run's retry policy stops here
        return ApplicationError(reason, type=type(error).__name__)  # retried, as the error itself would be

    async def _over_capacity(self, error: ProjectAtCapacity) -> ApplicationError:
        """The attempt gives its slot back: it says why (in the run's logs the first time), and counts itself in
        its heartbeat as one that did not run."""
        throttled = self.fence.previous.throttled
        wait = wait_before_retry(throttled)
        said = f"Export attempt {self.number} waits for a slot: {error}; trying again in {wait.total_seconds():.0f} s"
        activity.logger.debug("%s", said)
        if not throttled:
            with contextlib.suppress(Exception):  # a word for the person reading the logs, not a book to keep
                await self.fence.write_pending(said, level="INFO")
        self.fence.done.ended, self.fence.done.throttled = True, throttled + 1
        activity.heartbeat(self.beat())
        return ApplicationError(
            said, type=PROJECT_AT_CAPACITY, category=ApplicationErrorCategory.BENIGN, next_retry_delay=wait
        )

    async def _record(self, message: str, *, level: Level = "WARNING", latest_error: str = "") -> None:
        """Write the attempt's end to the run's logs, or hand it on in the heartbeat."""
        await self.fence.record(message, level=level, latest_error=latest_error)
        activity.heartbeat(self.beat())

    async def _fate_of_previous(self) -> str:
        """What became of the attempt before, in Temporal's words: it left none of its own."""
        info = activity.info()
        handle = self.rt.client.get_workflow_handle(info.workflow_id or "", run_id=info.workflow_run_id)
        try:
            description = await asyncio.wait_for(handle.describe(), BOOKKEEPING_SECONDS)
        except Exception as error:
            return f"ended without a word (Temporal could not say why: {type(error).__name__})"
        for pending in description.raw_description.pending_activities:
            if pending.activity_id == info.activity_id and pending.HasField("last_failure"):
                return _fate(pending.last_failure)
        return "ended without a word"


def _fate(failure: Failure) -> str:
    if failure.HasField("timeout_failure_info"):
        match failure.timeout_failure_info.timeout_type:
            case TimeoutType.TIMEOUT_TYPE_HEARTBEAT:
                return "timed out after its worker stopped heartbeating"
            case TimeoutType.TIMEOUT_TYPE_START_TO_CLOSE:
                return "timed out: it ran past its start-to-close timeout"
        return f"timed out ({TimeoutType.Name(failure.timeout_failure_info.timeout_type)})"
    if failure.application_failure_info.type == "WorkerShutdown":
        return "was stopped by its worker's shutdown"
    return f"failed: {failure.message}"


def _worker_shutting_down() -> bool:
    with contextlib.suppress(RuntimeError):
        details = activity.cancellation_details()
        return bool(details and details.worker_shutdown)
    return activity.is_worker_shutdown()


def _heartbeated(details: Any) -> Checkpoint:
    """The checkpoint the attempt before heartbeated (of the same activity), or a fresh start."""
    if details and isinstance(details[0], dict):
        with contextlib.suppress(TypeError):
            return Checkpoint(**details[0])
    return Checkpoint()
