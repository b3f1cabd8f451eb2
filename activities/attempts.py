"""The attempts of a run's export: where each resumes, its checkpoints, and its end in the run's logs.

An attempt resumes from a `Checkpoint`: how far the destination holds the interval for good. Each step the
destination holds for good is heartbeated and also saved in the run's row at once (the heartbeat reaches
Temporal at most every few seconds): a worker killed between heartbeats loses nothing, and an attempt resumes
from the later of the two. The row also fences: an attempt takes the run over when it begins, and an earlier
one still running (its worker cut off from Temporal past the heartbeat timeout) stops at its next step.

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
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from temporalio import activity
from temporalio.api.enums.v1 import TimeoutType
from temporalio.api.failure.v1 import Failure
from temporalio.exceptions import ApplicationError, ApplicationErrorCategory, is_cancelled_exception

from activities.admission import ProjectAtCapacity, wait_before_retry
from batch_exports.exports.export import BatchExport
from batch_exports.runtime import Runtime
from batch_exports.store import db, exports, logs, runs
from connectors.destinations import DestinationUserError
from connectors.sources.reading import SourceTimeout
from contracts.statuses import RunStatus
from contracts.workflows import ATTEMPTS_EXHAUSTED, PROJECT_AT_CAPACITY

BOOKKEEPING_SECONDS = 5.0
"""The longest an attempt waits on the database for its books (never on its way out for longer)."""
MAX_UNRECORDED = 20
LATE = "(recorded late: the database was unavailable when it happened)"
NOT_SAVED: tuple[type[Exception], ...] = (TimeoutError, *db.UNAVAILABLE)
RESUME_AFTER_SHUTDOWN = timedelta(seconds=1)
"""An attempt stopped by its worker's shutdown is retried this soon (on another worker), not after the backoff."""


@dataclass
class Checkpoint:
    """How far the export got, heartbeated: a retried attempt resumes from here.

    Everything up to `position` is in the destination for good, in `files` complete files; `records` and
    `bytes` count what this execution exported, so a resumed attempt never counts a record twice.
    """

    position: str | None = None
    files: int = 0
    records: int = 0
    bytes: int = 0
    attempt: int = 0
    """The attempt that heartbeated it."""
    ended: bool = False
    """That attempt reached its end, and recorded it (or left it in `unrecorded`)."""
    unrecorded: list[str] = field(default_factory=list)
    """Ends of attempts that are not in the run's logs yet (the database was down when they happened)."""
    throttled: int = 0
    """Attempts so far that gave their slot back, their project at capacity: they do not count."""

    def durable(self) -> dict[str, Any]:
        """What the run's row keeps: where the destination stands."""
        return {"position": self.position, "files": self.files, "records": self.records, "bytes": self.bytes}


class Superseded(Exception):
    """A later attempt has taken the run's export over: this one stops writing."""


class WorkerShutdown(Exception):
    """The worker is shutting down: the attempt stopped at a checkpoint."""


class AttemptsExhausted(Exception):
    """The attempts before used up the export's attempts without saying so themselves (they timed out)."""


class Attempt:
    """This attempt of the export activity of one run."""

    def __init__(self, rt: Runtime, run_id: uuid.UUID, batch_export_id: uuid.UUID, max_attempts: int = 0) -> None:
        self.rt, self.run_id, self.batch_export_id = rt, run_id, batch_export_id
        self.max_attempts = max_attempts
        """0: Temporal's retry policy counts the attempts."""
        info = activity.info()
        self.number = info.attempt
        self.scheduled = info.current_attempt_scheduled_time
        """Fences: attempts are scheduled one after the other (their numbers may start again, on an activity reset)."""
        self.previous = _heartbeated(info.heartbeat_details)
        self.export: BatchExport | None = None
        self.done = replace(self.previous, attempt=self.number, ended=False, unrecorded=list(self.previous.unrecorded))
        """Where the destination stands; heartbeated (with the ends still to record)."""

    @property
    def ran(self) -> int:
        """The attempts that ran, this one included (not the ones that gave their slot back)."""
        return self.number - self.previous.throttled

    def beat(self) -> Checkpoint:
        return replace(self.done, unrecorded=list(self.done.unrecorded))

    async def ensure_attempts_left(self, export: BatchExport) -> None:
        """`AttemptsExhausted` when the attempts before used up the export's (they timed out, or their worker
        stopped, so none of them could say it was the last)."""
        self.export = export
        if self.max_attempts and self.ran > self.max_attempts:
            raise AttemptsExhausted(
                f"Export attempt {self.number - 1} {await self._fate_of_previous()}; it was the last of the "
                f"{self.max_attempts} BATCH_EXPORTS_EXPORT_MAX_ATTEMPTS allows"
            )

    async def begin(self, export: BatchExport) -> Checkpoint:
        """Take the run over, record what became of the attempts before, and say where this one resumes."""
        self.export = export
        claimed, saved = await runs.claim_checkpoint(self.rt.pool, self.run_id, self.number, self.scheduled)
        if not claimed:
            raise Superseded(f"a later attempt has taken the export of run {self.run_id} over")
        if saved and saved.get("records", 0) > self.done.records:  # the row is ahead of the last heartbeat
            self.done = replace(self.done, **{key: saved[key] for key in Checkpoint().durable() if key in saved})
        start = Checkpoint(**self.done.durable())
        await runs.update_progress(
            self.rt.pool,
            self.run_id,
            status=RunStatus.RUNNING,
            records_completed=start.records,
            bytes_exported=start.bytes,
        )
        if self.ran > 1:
            level = logs.Level.INFO
            if self.previous.attempt == self.number - 1 and self.previous.ended:
                where = f"after record {start.records:,}" if start.position else "from the start of the interval"
                said = f"Export attempt {self.number} resumes {where}"
            else:  # the attempt before left no word
                level = logs.Level.WARNING
                said = f"Export attempt {self.number - 1} {await self._fate_of_previous()}; "
                said += f"resumed after record {start.records:,}" if start.position else "started again from the start"
            try:
                await self._write_pending(said, level=level)
            except Exception:
                self.done.unrecorded.append(f"{said} {LATE}")
                raise
        return start

    async def checkpoint(self, done: Checkpoint) -> None:
        """Everything up to `done` is in the destination for good: heartbeat it and save it in the run's row."""
        self.done = replace(self.done, **done.durable())
        activity.heartbeat(self.beat())
        try:
            saved = await asyncio.wait_for(
                runs.save_checkpoint(
                    self.rt.pool,
                    self.run_id,
                    self.number,
                    self.scheduled,
                    self.done.durable(),
                    self.done.records,
                    self.done.bytes,
                ),
                BOOKKEEPING_SECONDS,
            )
        except NOT_SAVED as error:  # the heartbeat holds it; the export goes on
            activity.logger.warning("checkpoint not saved in the run's row: %s", error)
            return
        if not saved:
            raise Superseded(f"a later attempt has taken the export of run {self.run_id} over")

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
            message = "Export attempt interrupted by worker shutdown, resuming from checkpoint"
            message += f" after record {self.done.records:,}" if self.done.position else " (from the start)"
            await self._record(f"{message} (attempt {self.number})", level=logs.Level.INFO)
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
        if self.max_attempts and self.ran >= self.max_attempts:
            return ApplicationError(reason, type=ATTEMPTS_EXHAUSTED)  # the run's retry policy stops here
        return ApplicationError(reason, type=type(error).__name__)  # retried, as the error itself would be

    async def _over_capacity(self, error: ProjectAtCapacity) -> ApplicationError:
        """The attempt gives its slot back: it says why (in the run's logs the first time), and counts itself in
        its heartbeat as one that did not run."""
        wait = wait_before_retry(self.previous.throttled)
        said = f"Export attempt {self.number} waits for a slot: {error}; trying again in {wait.total_seconds():.0f} s"
        activity.logger.debug("%s", said)
        if not self.previous.throttled:
            with contextlib.suppress(Exception):  # a word for the person reading the logs, not a book to keep
                await self._write_pending(said, level=logs.Level.INFO)
        self.done.ended, self.done.throttled = True, self.previous.throttled + 1
        activity.heartbeat(self.beat())
        return ApplicationError(
            said, type=PROJECT_AT_CAPACITY, category=ApplicationErrorCategory.BENIGN, next_retry_delay=wait
        )

    async def _record(self, message: str, *, level: logs.Level = logs.Level.WARNING, latest_error: str = "") -> None:
        """Write the attempt's end (and ends still unrecorded) to the run's logs, or hand it on in the heartbeat."""
        try:
            await self._write_pending(message, level=level, latest_error=latest_error)
        except Exception as failure:  # never instead of the attempt's own error
            activity.logger.warning("could not record the end of export attempt %s: %s", self.number, failure)
            late = f"{message} {LATE}"
            self.done.unrecorded = [*self.done.unrecorded, late][-MAX_UNRECORDED:]
        self.done.ended = True
        activity.heartbeat(self.beat())

    async def _write_pending(
        self, message: str, *, level: logs.Level = logs.Level.INFO, latest_error: str = ""
    ) -> None:
        """Write the ends still unrecorded, then `message`, to the run's logs (each removed once written)."""
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            team_id = self.export.team_id if self.export else await exports.team_of(self.rt.pool, self.batch_export_id)
            if team_id is None:
                return
            while self.done.unrecorded:
                late = self.done.unrecorded[0]
                await self._log(team_id, logs.Level.WARNING, late)
                self.done.unrecorded.pop(0)
                latest_error = latest_error or late
            await self._log(team_id, level, message)
            if latest_error:
                await runs.update_progress(self.rt.pool, self.run_id, latest_error=latest_error)

    async def _log(self, team_id: int, level: logs.Level, message: str) -> None:
        await logs.write(
            self.rt.pool,
            team_id=team_id,
            batch_export_id=self.batch_export_id,
            run_id=self.run_id,
            workflow_run_id=activity.info().workflow_run_id,
            level=level,
            message=message,
        )

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
