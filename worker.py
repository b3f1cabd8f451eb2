"""The worker: registers the workflows and activities on the service's task queue, and runs them.

Run it with `python worker.py` against the Temporal cluster and PostgreSQL the environment names
(`TEMPORAL_ADDRESS`, `BATCH_EXPORTS_DATABASE_URL`, ...; see the README).

On SIGTERM (or SIGINT) it stops polling and gives the attempts in flight `BATCH_EXPORTS_SHUTDOWN_GRACE_SECONDS`
to reach a checkpoint; each then stops there, and another worker resumes it a second later. The handlers are
its own, so it shuts down the same way as PID 1 in a container (where a signal without one is ignored).
"""

import asyncio
import logging
import os
import signal
import sys
import traceback
from datetime import timedelta

from temporalio.worker import PollerBehaviorAutoscaling, UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.backfills import BackfillBookkeeping
from activities.export import Exporter
from activities.notify import Notifier
from activities.reconciliation import Reconciler
from activities.runs import RunBookkeeping
from batch_exports import collector, event_loop
from batch_exports.runtime import Runtime, open_runtime
from batch_exports.settings import get_settings
from batch_exports.telemetry import gauges, logs
from batch_exports.temporal.schedules import ensure_reconciliation
from workflows.backfill import BackfillWorkflow
from workflows.reconciliation import ReconcileWorkflow
from workflows.run import RunBatchExportWorkflow

logger = logging.getLogger("worker")

POLLING = PollerBehaviorAutoscaling()
"""As many polls as the task queue's backlog asks for: a task finds a waiting poll (matched in memory) instead of
being written to the server's database and read back (halved the time workflow tasks wait, in bench/backfill.py)."""


def workflow_runner(sandboxed: bool) -> WorkflowRunner:
    """Temporal's sandbox, or the workflows as plain Python (`BATCH_EXPORTS_WORKFLOW_SANDBOX`): the sandbox builds an
    instance of each execution's module and proxies its globals, about a quarter of a worker's CPU per run in a
    backfill. Without it, the tests keep the workflows deterministic: they run them in the sandbox (Temporal's
    default runner) and replay recorded histories under it."""
    return SandboxedWorkflowRunner() if sandboxed else UnsandboxedWorkflowRunner()


def build_worker(rt: Runtime) -> Worker:
    runs, backfills, exporter, reconciler = RunBookkeeping(rt), BackfillBookkeeping(rt), Exporter(rt), Reconciler(rt)
    return Worker(
        rt.client,
        task_queue=rt.settings.task_queue,
        workflows=[RunBatchExportWorkflow, BackfillWorkflow, ReconcileWorkflow],
        workflow_runner=workflow_runner(rt.settings.workflow_sandbox),
        interceptors=[logs.ActivityLogContext()],  # log lines name the export and run an activity works on
        # Heartbeats reach the server at least every 2 s, so a cancel reaches an export within seconds.
        max_heartbeat_throttle_interval=timedelta(seconds=2),
        # On shutdown, attempts in flight get this long to reach a checkpoint before they are cancelled.
        graceful_shutdown_timeout=timedelta(seconds=rt.settings.shutdown_grace_seconds),
        # A project's attempts hold at most BATCH_EXPORTS_MAX_CONCURRENT_EXPORTS_PER_PROJECT of these (`admission`).
        max_concurrent_activities=rt.settings.worker_max_concurrent_activities,
        workflow_task_poller_behavior=POLLING,
        activity_task_poller_behavior=POLLING,
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
            Notifier(rt).notify,
        ],
    )


async def main() -> None:
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    settings = get_settings()
    logs.configure(settings)
    async with open_runtime(settings, process="worker", metrics="worker") as rt, gauges.refreshing(rt):
        await ensure_reconciliation(rt.client, rt.settings)
        worker = build_worker(rt)
        frozen = collector.settle()  # everything is loaded: collections need not look at it again
        logger.info("garbage collector: %d objects frozen, a collection every %d new", frozen, collector.YOUNG_OBJECTS)
        running = asyncio.create_task(worker.run())
        stop = asyncio.create_task(stopping.wait())
        await asyncio.wait({running, stop}, return_when=asyncio.FIRST_COMPLETED)
        if stopping.is_set():
            logger.info(
                "shutting down: attempts in flight have %ss to reach a checkpoint", rt.settings.shutdown_grace_seconds
            )
            await worker.shutdown()
        stop.cancel()
        await running
        logger.info("worker stopped")


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    code = 0
    try:
        event_loop.run(main(), get_settings())
    except Exception:
        traceback.print_exc()
        code = 1
    # Leave without the interpreter's finalisation, which can abort while the SDK's native threads still run
    # (temporalio/sdk-python#300): a clean shutdown would otherwise end with SIGABRT.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
