"""Executions of the run workflow recorded before its rules moved into `batch_exports/runs/` replay on today's
code: the workflow still issues the same commands, so executions running across a deploy go on.

`histories/run_workflow.json` holds, by scenario, every execution of each scenario of `test_run_workflow.py` (a
completion, a user's error, a retried failure, a continue-as-new, two cancels, a hand-over, a fire whose interval
has a run, an execution without inputs), recorded from the code of commit b62db86 with those stub activities. Left
out: the first execution of the retried failure, which the time-skipping server closes as continued-as-new (its
way of retrying), so that no code replays it, today's or b62db86's."""

import json
from collections.abc import AsyncIterator
from pathlib import Path

from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.run import RunBatchExportWorkflow

HISTORIES = Path(__file__).parent / "histories" / "run_workflow.json"


async def test_executions_recorded_before_the_move_replay_on_today_s_workflow() -> None:
    recorded = json.loads(HISTORIES.read_text())
    histories = [WorkflowHistory.from_json(f"run-{name}", history) for name, history in recorded.items()]
    assert len(histories) == 11

    async def each() -> AsyncIterator[WorkflowHistory]:
        for history in histories:
            yield history

    results = await Replayer(workflows=[RunBatchExportWorkflow]).replay_workflows(each(), raise_on_replay_failure=False)
    assert {run_id: str(failure) for run_id, failure in results.replay_failures.items()} == {}
