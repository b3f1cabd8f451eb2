"""The reconciliation activity (see `batch_exports.reconciliation`), and the schedule that runs it."""

import contextlib
import dataclasses
from datetime import timedelta

import asyncpg
from temporalio import activity
from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
)

from batch_exports import reconciliation
from batch_exports.crypto import ConfigCipher
from batch_exports.settings import Settings
from workflows.inputs import RECONCILE_WORKFLOW, ReconcileResult

RECONCILE_SCHEDULE_ID = "batch-exports-reconcile"


class Reconciler:
    def __init__(self, pool: asyncpg.Pool, client: Client, settings: Settings, cipher: ConfigCipher) -> None:
        self.pool = pool
        self.client = client
        self.settings = settings
        self.cipher = cipher

    @activity.defn(name="reconcile")
    async def reconcile(self) -> ReconcileResult:
        done = await reconciliation.reconcile(self.pool, self.client, self.settings, self.cipher)
        return ReconcileResult(**dataclasses.asdict(done))


async def ensure_reconcile_schedule(client: Client, settings: Settings) -> None:
    """Create the schedule that runs reconciliation, unless it exists."""
    schedule = Schedule(
        action=ScheduleActionStartWorkflow(
            RECONCILE_WORKFLOW,
            id=RECONCILE_SCHEDULE_ID,
            task_queue=settings.task_queue,
            execution_timeout=timedelta(minutes=10),
            static_summary="Reconcile batch-export runs and schedules with Temporal",
        ),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=timedelta(seconds=settings.reconcile_every_seconds))]),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )
    with contextlib.suppress(ScheduleAlreadyRunningError):
        await client.create_schedule(RECONCILE_SCHEDULE_ID, schedule)
