"""The notify activity: tell the project's targets that an export's run failed for good, that the export was
paused automatically, or that it recovered; at most once per export, kind and day, and in the export's logs.

The day's notice is claimed before it is sent and released when a target did not take it, so the activity's
retries send it, to the targets that have not taken it yet (the attempt's heartbeat lists those that have).
"""

import uuid

from temporalio import activity

from batch_exports.runtime import Runtime
from batch_exports.services import notifications as notifying
from contracts.workflows import NotifyInputs


class Notifier:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="notify")
    async def notify(self, inputs: NotifyInputs) -> bool:
        """True when the notice went out now; False when there was nothing to send (no target, sent today)."""
        # Targets an earlier attempt reached (its heartbeat says which) are not sent the notice again.
        details = activity.info().heartbeat_details
        return await notifying.send(
            self.rt,
            uuid.UUID(inputs.batch_export_id),
            uuid.UUID(inputs.run_id),
            inputs.kind,
            sent=list(details[0]) if details else [],
            attempt=activity.info().attempt,
            heartbeat=activity.heartbeat,
        )
