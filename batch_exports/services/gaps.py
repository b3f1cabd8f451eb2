"""Why a boundary the schedule owed has no run: the cause that holds, for the log line that runs the interval
(or gives it up). Checked in this order:

- a pause outside the API that reconciliation never saw (paused and unpaused between two of its passes): the
  scheduler's record shows the schedule paused at the boundary. The interval is given up, as the paused span of
  any unpause outside the API is;
- a deleted schedule: reconciliation found it missing, and created it again, after the boundary;
- its own execution ended without a run (a schedule edited by hand: no inputs, no execution timeout);
- DST: the schedule's calendar has no fire at that instant;
- otherwise the schedule did not fire (Temporal down past its catch-up window).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from batch_exports.exports.export import BatchExport
from batch_exports.temporal import scheduler_history, schedules
from batch_exports.temporal.client import is_not_found
from contracts.intervals import run_workflow_id


@dataclass(frozen=True)
class Pause:
    """The schedule was paused in `[start, end)` (start None: before the scheduler's record begins)."""

    start: datetime | None
    end: datetime
    identity: str
    note: str | None

    def holds(self, at: datetime) -> bool:
        return (self.start is None or self.start <= at) and at < self.end

    def describe(self) -> str:
        who = f" by {self.identity}" if self.identity else ""
        since = f" at {self.start.isoformat()}" if self.start else ""
        note = f" ({self.note})" if self.note else ""
        return f"the schedule was paused outside the API{who}{since}{note} and unpaused at {self.end.isoformat()}"


def pauses(patches: list[scheduler_history.Patch]) -> list[Pause]:
    """The spans the schedule was paused in and unpaused outside the API, from the scheduler's record, oldest
    first. A pause with no unpause after it was undone through the API (an update, not in this record), which
    gives up or backfills its span itself: it is not one of these."""
    found, paused = [], None
    for patch in patches:
        if patch.pause is not None:
            paused = patch
        elif patch.unpause is not None:
            found.append(Pause(paused.at if paused else None, patch.at, (paused or patch).identity,
                               paused.pause if paused else None))  # fmt: skip
            paused = None
    return found


@dataclass(frozen=True)
class Cause:
    text: str
    pause: Pause | None = None
    """Set when a pause outside the API skipped the boundary: the interval is given up, not run."""


class Causes:
    """The causes of one export's missed boundaries, reading the scheduler's record once."""

    def __init__(self, client: Client, export: BatchExport, state: dict[str, object]) -> None:
        self.client, self.export, self.state = client, export, state
        self._pauses: list[Pause] | None = None

    async def of(self, end: datetime) -> Cause:
        if self._pauses is None:
            self._pauses = pauses(await scheduler_history.patches(self.client, str(self.export.id)) or [])
        if pause := next((p for p in self._pauses if p.holds(end)), None):
            return Cause(pause.describe(), pause)
        recreated = self.state.get("recreated")
        if isinstance(recreated, dict) and end <= datetime.fromisoformat(str(recreated["at"])):
            seen = recreated.get("last_seen")
            if seen is None or datetime.fromisoformat(str(seen)) < end:
                return Cause(
                    "the export's schedule was deleted outside the API; reconciliation created it again at "
                    f"{recreated['at']}"
                )
        if ended := await self._own_execution_ended(end):
            return Cause(ended)
        if self.export.interval.is_calendar and end not in await schedules.matching_times(
            self.client, str(self.export.id), end - timedelta(seconds=1), end + timedelta(seconds=1)
        ):
            return Cause("a wall-clock time a DST change skipped: the schedule's calendar does not fire then")
        return Cause("the schedule did not fire: Temporal down past its catch-up window")

    async def _own_execution_ended(self, end: datetime) -> str | None:
        workflow_id = run_workflow_id(str(self.export.id), end)
        try:
            described = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as error:
            if is_not_found(error):
                return None
            raise
        if described.status == WorkflowExecutionStatus.RUNNING:
            return f"its id, {workflow_id}, was held by an execution that recorded no run (started by hand, say)"
        status = described.status.name if described.status else "unknown"
        return f"its execution {workflow_id} ended {status} without a run (a schedule edited by hand, say)"
