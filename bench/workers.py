"""One worker process of the benchmarks: the service's worker (`worker.build_worker`) and, on the task queue
`{task queue}-floor`, the floor's workflows (`bench.floor`). Settings come from the environment.

    python -m bench.workers
"""

import asyncio
import compileall
import os
import signal
from pathlib import Path

from temporalio.worker import Worker

from batch_exports.runtime import open_runtime
from batch_exports.settings import get_settings
from bench.floor import FloorChildWorkflow, FloorWorkflow, noop
from worker import POLLING, build_worker, workflow_runner


def floor_queue(task_queue: str) -> str:
    return f"{task_queue}-floor"


def compile_workflows() -> None:
    """Bytecode for the workflow modules, as the image has (`deploy/Dockerfile`): the sandbox imports a workflow's
    module afresh for every execution, and compiles it from source each time where there is no bytecode (as
    under PYTHONDONTWRITEBYTECODE): about 4 ms of CPU per run."""
    compileall.compile_dir(Path(__file__).resolve().parents[1] / "workflows", quiet=1)


async def main() -> None:
    compile_workflows()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    async with open_runtime(get_settings(), process="benchmark worker", metrics="worker") as rt:
        floor = Worker(
            rt.client,
            task_queue=floor_queue(rt.settings.task_queue),
            workflows=[FloorWorkflow, FloorChildWorkflow],
            activities=[noop],
            workflow_runner=workflow_runner(rt.settings.workflow_sandbox),  # the same worker options as the service's
            workflow_task_poller_behavior=POLLING,
            activity_task_poller_behavior=POLLING,
        )
        async with build_worker(rt), floor:
            print("ready", flush=True)
            await stop.wait()


if __name__ == "__main__":
    asyncio.run(main())
    os._exit(0)  # past the Temporal runtime's threads (temporalio/sdk-python#300)
