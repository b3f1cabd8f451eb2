"""The notify activity: tell the project's targets that an export's run failed for good, that the export was
paused automatically, or that it recovered; at most once per export, kind and day, and in the export's logs.

The day's notice is claimed before it is sent and released when a target did not take it, so the activity's
retries send it, to the targets that have not taken it yet (the attempt's heartbeat lists those that have).
"""

import uuid
from datetime import UTC, datetime

from temporalio import activity

from batch_exports.runtime import Runtime
from batch_exports.services import notifications as notifying
from batch_exports.store import exports, logs, notifications, runs
from contracts.workflows import NotifyInputs


class Notifier:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="notify")
    async def notify(self, inputs: NotifyInputs) -> bool:
        """True when the notice went out now; False when there was nothing to send (no target, sent today)."""
        pool, export_id, run_id = self.rt.pool, uuid.UUID(inputs.batch_export_id), uuid.UUID(inputs.run_id)
        export = await exports.get(pool, export_id, self.rt.cipher)
        if export is None:
            return False
        targets = await notifications.targets(pool, export.team_id, self.rt.cipher)
        day = datetime.now(UTC).date()
        if not targets or not await notifications.claim(pool, export_id, inputs.kind, day):
            return False
        notice = notifying.compose(inputs.kind, export, await runs.get(pool, run_id, export_id))
        # Targets an earlier attempt reached (its heartbeat says which) are not sent the notice again.
        details = activity.info().heartbeat_details
        sent: list[str] = list(details[0]) if details else []
        remaining = [t for t in targets if str(t.id) not in sent]

        def taken(target: notifications.Target) -> None:
            sent.append(str(target.id))
            activity.heartbeat(sent)

        problems = await notifying.deliver(self.rt.settings, remaining, notice, taken)
        if problems:
            await notifications.release(pool, export_id, inputs.kind, day)
            message = f"Notice '{inputs.kind}' not sent (attempt {activity.info().attempt}): {'; '.join(problems)}"
            await logs.write(pool, team_id=export.team_id, batch_export_id=export_id, run_id=run_id,
                             level=logs.Level.WARNING, message=message)  # fmt: skip
            raise notifying.NotSent(message)
        await logs.write(
            pool, team_id=export.team_id, batch_export_id=export_id, run_id=run_id, level=logs.Level.INFO,
            message=f"Notice '{inputs.kind}' sent to {len(targets)} target(s): {', '.join(t.display for t in targets)}",
        )  # fmt: skip
        return True
