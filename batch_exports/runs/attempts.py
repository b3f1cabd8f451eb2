"""Fencing between the attempts of one run's export, and each attempt's end in the run's logs.

An attempt resumes from a `Checkpoint`: how far the destination holds the interval for good, heartbeated and saved
in the run's row. The row fences: an attempt takes the run over when it begins (`Fence.begin`), and an earlier one
still running (its worker cut off from Temporal past the heartbeat timeout) is refused its next save and stops
(`Superseded`). Only the attempts that ran count against the export's `max_attempts`: one that found its project
at capacity gave its slot back before doing anything, and says so in its checkpoint (`throttled`).

Every attempt's end reaches the run's logs once: written at once when the books can take it, else handed on in
the checkpoint (`unrecorded`) for the next attempt to write first. Bookkeeping that fails never replaces the error
the attempt ends with.

The activity (`activities.attempts`) reads Temporal's activity info, heartbeats and turns errors into Temporal's
failures; the rules of the fence are here, over the run book.
"""

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from batch_exports.runs.ports import BooksUnavailable, Level, LogEntry, RunBook
from batch_exports.runs.run import Progress, SavedCheckpoint

BOOKKEEPING_SECONDS = 5.0
"""The longest an attempt waits on the database for its books (never on its way out for longer)."""
MAX_UNRECORDED = 20
LATE = "(recorded late: the database was unavailable when it happened)"
logger = logging.getLogger(__name__)


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


class AttemptsExhausted(Exception):
    """The attempts before used up the export's attempts without saying so themselves (they timed out)."""


class Fence:
    """One attempt of the export of one run, as the books see it."""

    def __init__(
        self,
        book: RunBook,
        run_id: uuid.UUID,
        batch_export_id: uuid.UUID,
        *,
        number: int,
        scheduled: datetime,
        previous: Checkpoint,
        max_attempts: int = 0,
        workflow_run_id: str | None = None,
        log: logging.Logger | logging.LoggerAdapter[Any] = logger,
    ) -> None:
        self.log = log
        self.book, self.run_id, self.batch_export_id = book, run_id, batch_export_id
        self.number, self.scheduled, self.previous = number, scheduled, previous
        """Fences: attempts are scheduled one after the other (their numbers may start again, on an activity reset)."""
        self.max_attempts = max_attempts
        """0: Temporal's retry policy counts the attempts."""
        self.workflow_run_id = workflow_run_id
        self.team_id: int | None = None
        """The export's project, once known (else the books are asked when it is needed)."""
        self.done = replace(previous, attempt=number, ended=False, unrecorded=list(previous.unrecorded))
        """Where the destination stands; heartbeated (with the ends still to record)."""

    @property
    def ran(self) -> int:
        """The attempts that ran, this one included (not the ones that gave their slot back)."""
        return self.number - self.previous.throttled

    @property
    def exhausted(self) -> bool:
        """The attempts before used up the export's attempts (they timed out, or their worker stopped, so none of
        them could say it was the last)."""
        return bool(self.max_attempts) and self.ran > self.max_attempts

    @property
    def last(self) -> bool:
        """This attempt is the last the export's attempts allow: its failure fails the run."""
        return bool(self.max_attempts) and self.ran >= self.max_attempts

    def beat(self) -> Checkpoint:
        return replace(self.done, unrecorded=list(self.done.unrecorded))

    async def begin(self, fate_of_previous: Callable[[], Awaitable[str]]) -> Checkpoint:
        """Take the run over, record what became of the attempts before, and say where this one resumes.
        `fate_of_previous` says what became of the attempt before when it left no word."""
        # `Running`, with what the last heartbeat holds; a saved checkpoint ahead of it has its counts in the row
        heartbeated = Progress(records_completed=self.done.records, bytes_exported=self.done.bytes)
        claimed, saved = await self.book.claim_checkpoint(self.run_id, self.number, self.scheduled, heartbeated)
        if not claimed:
            raise Superseded(f"a later attempt has taken the export of run {self.run_id} over")
        if saved and saved.get("records", 0) > self.done.records:  # the row is ahead of the last heartbeat
            self.done = replace(self.done, **{key: saved[key] for key in Checkpoint().durable() if key in saved})
        start = Checkpoint(**self.done.durable())
        if self.ran > 1:
            level: Level = "INFO"
            if self.previous.attempt == self.number - 1 and self.previous.ended:
                where = f"after record {start.records:,}" if start.position else "from the start of the interval"
                said = f"Export attempt {self.number} resumes {where}"
            else:  # the attempt before left no word
                level = "WARNING"
                said = f"Export attempt {self.number - 1} {await fate_of_previous()}; "
                said += f"resumed after record {start.records:,}" if start.position else "started again from the start"
            try:
                await self.write_pending(said, level=level)
            except Exception:
                self.done.unrecorded.append(f"{said} {LATE}")
                raise
        return start

    def advance(self, done: Checkpoint) -> Checkpoint:
        """Everything up to `done` is in the destination for good: what to heartbeat now, then `save`."""
        self.done = replace(self.done, **done.durable())
        return self.beat()

    async def save(self) -> None:
        """Save where the destination stands in the run's row; `Superseded` when a later attempt has taken the
        export over. Books out of reach are not an error: the heartbeat holds it, and the export goes on."""
        saving = self.book.save_checkpoint(
            self.run_id,
            SavedCheckpoint(self.number, self.scheduled, self.done.durable(), self.done.records, self.done.bytes),
        )
        try:
            saved = await asyncio.wait_for(saving, BOOKKEEPING_SECONDS)
        except (TimeoutError, BooksUnavailable) as error:
            self.log.warning("checkpoint not saved in the run's row: %s", error)
            return
        if not saved:
            raise Superseded(f"a later attempt has taken the export of run {self.run_id} over")

    async def record(self, message: str, *, level: Level = "WARNING", latest_error: str = "") -> None:
        """Write the attempt's end (and ends still unrecorded) to the run's logs, or keep it in `unrecorded` for the
        next attempt; the caller heartbeats `beat()` after."""
        try:
            await self.write_pending(message, level=level, latest_error=latest_error)
        except Exception as failure:  # never instead of the attempt's own error
            self.log.warning("could not record the end of export attempt %s: %s", self.number, failure)
            self.done.unrecorded = [*self.done.unrecorded, f"{message} {LATE}"][-MAX_UNRECORDED:]
        self.done.ended = True

    async def write_pending(self, message: str, *, level: Level = "INFO", latest_error: str = "") -> None:
        """Write the ends still unrecorded, then `message`, to the run's logs (each removed once written)."""
        async with asyncio.timeout(BOOKKEEPING_SECONDS):
            team_id = self.team_id if self.team_id is not None else await self.book.team_of(self.batch_export_id)
            if team_id is None:
                return
            while self.done.unrecorded:
                late = self.done.unrecorded[0]
                await self._log(team_id, "WARNING", late)
                self.done.unrecorded.pop(0)
                latest_error = latest_error or late
            await self._log(team_id, level, message)
            if latest_error:
                await self.book.update_run(self.run_id, Progress(latest_error=latest_error))

    async def _log(self, team_id: int, level: Level, message: str) -> None:
        await self.book.log(LogEntry(team_id, self.batch_export_id, level, message, self.run_id, self.workflow_run_id))
