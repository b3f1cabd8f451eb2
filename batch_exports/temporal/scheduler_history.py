"""What operators did to a schedule in the Temporal UI or CLI, with when and who, as the server recorded it.

Temporal's API tells whether a schedule is paused and the note, but not when it was paused nor by whom, nor
that someone backfilled it. The server's scheduler keeps each such change (a "patch": pause, unpause,
trigger, backfill) as a signal in the history of its own workflow, `temporal-sys-scheduler:<schedule id>`,
with the signal's time and the caller's identity. That workflow is the server's implementation (true of the
server the `temporal` CLI ships and of clusters of the same versions); where it is absent, `patches` says so
with None, and callers fall back to the time they noticed a change.
"""

from dataclasses import dataclass
from datetime import UTC, datetime

from temporalio.api.schedule.v1 import SchedulePatch
from temporalio.client import Client
from temporalio.service import RPCError


@dataclass(frozen=True)
class Patch:
    at: datetime
    identity: str
    pause: str | None = None
    """The note of a pause."""
    unpause: str | None = None
    """The note of an unpause."""
    backfills: tuple[tuple[datetime, datetime], ...] = ()
    """Backfilled ranges (start and end, as the request gave them)."""
    triggered: bool = False


async def patches(client: Client, schedule_id: str, *, after: datetime | None = None) -> list[Patch] | None:
    """The schedule's patches after `after` (all the scheduler's current history holds), oldest first; None when
    the server's scheduler cannot be read this way."""
    found = []
    try:
        async for event in client.get_workflow_handle(f"temporal-sys-scheduler:{schedule_id}").fetch_history_events():
            if not event.HasField("workflow_execution_signaled_event_attributes"):
                continue
            signal = event.workflow_execution_signaled_event_attributes
            at = event.event_time.ToDatetime(tzinfo=UTC)
            if signal.signal_name != "patch" or not signal.input.payloads or (after and at <= after):
                continue
            patch = SchedulePatch()
            patch.ParseFromString(signal.input.payloads[0].data)
            found.append(
                Patch(
                    at=at,
                    identity=signal.identity,
                    pause=patch.pause or None,
                    unpause=patch.unpause or None,
                    backfills=tuple(
                        (b.start_time.ToDatetime(tzinfo=UTC), b.end_time.ToDatetime(tzinfo=UTC))
                        for b in patch.backfill_request
                    ),
                    triggered=patch.HasField("trigger_immediately"),
                )
            )
    except (RPCError, ValueError):
        return None
    return found
