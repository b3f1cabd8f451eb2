"""The worker: registers the workflows and activities on the service's task queue, and runs them.

Run it with `python worker.py` against the Temporal cluster and PostgreSQL the environment names
(`TEMPORAL_ADDRESS`, `BATCH_EXPORTS_DATABASE_URL`, ...; see the README).
"""

import asyncio
from datetime import timedelta

from temporalio.worker import Worker

from activities.backfills import BackfillBookkeeping
from activities.export import Exporter
from activities.reconciliation import Reconciler
from activities.runs import RunBookkeeping
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.settings import get_settings
from batch_exports.temporal.schedules import ensure_reconciliation
from workflows.backfill import BackfillWorkflow
from workflows.reconciliation import ReconcileWorkflow
from workflows.run import RunBatchExportWorkflow


def build_worker(rt: Runtime) -> Worker:
    runs, backfills, exporter, reconciler = RunBookkeeping(rt), BackfillBookkeeping(rt), Exporter(rt), Reconciler(rt)
    return Worker(
        rt.client,
        task_queue=rt.settings.task_queue,
        workflows=[RunBatchExportWorkflow, BackfillWorkflow, ReconcileWorkflow],
        # Heartbeats reach the server at least every 2 s, so a cancel reaches an export within seconds.
        max_heartbeat_throttle_interval=timedelta(seconds=2),
        activities=[
            runs.start_run,
            runs.finish_run,
            runs.hand_over,
            exporter.export_interval,
            backfills.start_backfill,
            backfills.finish_backfill,
            backfills.intervals_with_runs,
            backfills.cancel_runs,
            backfills.wait_for_workflow,
            reconciler.reconcile,
        ],
    )


async def main() -> None:
    async with open_runtime(get_settings(), process="worker") as rt:
        await ensure_reconciliation(rt.client, rt.settings)
        await build_worker(rt).run()


if __name__ == "__main__":
    asyncio.run(main())
