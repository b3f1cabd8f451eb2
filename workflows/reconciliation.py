"""The reconciliation workflow, started every minute by a schedule of the service itself
(`batch_exports.temporal.schedules.ensure_reconcile_schedule`)."""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import Reconciler
    from contracts.workflows import RECONCILE_WORKFLOW, ReconcileResult


@workflow.defn(name=RECONCILE_WORKFLOW)
class ReconcileWorkflow:
    @workflow.run
    async def run(self) -> ReconcileResult:
        return await workflow.execute_activity_method(
            Reconciler.reconcile,
            start_to_close_timeout=timedelta(minutes=5),
            retry_policy=RetryPolicy(maximum_attempts=3),
        )
