"""The reconciliation activity (see `batch_exports.services.reconciliation`)."""

import dataclasses

from temporalio import activity

from batch_exports.runtime import Runtime
from batch_exports.services import reconciliation
from contracts.workflows import ReconcileResult


class Reconciler:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt

    @activity.defn(name="reconcile")
    async def reconcile(self) -> ReconcileResult:
        done = await reconciliation.reconcile(self.rt)
        return ReconcileResult(**dataclasses.asdict(done))
