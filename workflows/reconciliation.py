"""The reconciliation workflow: one long-lived execution (the worker starts it) that reconciles every
`every_seconds` and continues as new now and then, so the workflow list holds one row of it, not one a minute.
A failed pass is reported in its current details and retried at the next one.
"""

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from activities.reconciliation import Reconciler
    from contracts.workflows import RECONCILE_WORKFLOW, ReconcileInputs, ReconcileResult

PASSES_PER_EXECUTION = 120
"""Passes one execution makes before it continues as new, to keep its history short."""


@workflow.defn(name=RECONCILE_WORKFLOW)
class ReconcileWorkflow:
    @workflow.run
    async def run(self, inputs: ReconcileInputs) -> ReconcileResult | None:
        result = None
        passes = inputs.passes or PASSES_PER_EXECUTION
        for done in range(1, passes + 1):
            try:
                result = await workflow.execute_activity_method(
                    Reconciler.reconcile,
                    start_to_close_timeout=timedelta(minutes=5),
                    retry_policy=RetryPolicy(maximum_attempts=3),
                )
                workflow.set_current_details(f"Pass {done} at {workflow.now():%H:%M:%S} UTC: {result}")
            except ActivityError as error:
                if inputs.passes:
                    raise
                workflow.set_current_details(f"Pass {done} at {workflow.now():%H:%M:%S} UTC failed: {error.cause}")
            if done < passes:
                await workflow.sleep(timedelta(seconds=inputs.every_seconds))
        if inputs.passes:
            return result
        await workflow.sleep(timedelta(seconds=inputs.every_seconds))
        workflow.continue_as_new(inputs)
