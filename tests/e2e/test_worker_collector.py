"""The worker process settles its garbage collector once it has loaded everything (`batch_exports.collector`):
collections during an export no longer walk the modules, the runtime and the checked workflows."""

import re
import uuid
from pathlib import Path

from tests.support.helpers import eventually
from tests.support.processes import worker_process
from tests.support.stack import Project


async def test_the_worker_freezes_what_it_loaded_before_it_serves(project: Project, work_dir: Path) -> None:
    log = work_dir / f"worker-collector-{uuid.uuid4().hex[:8]}.log"
    with worker_process(project.stack.settings, log, task_queue=f"collector-{uuid.uuid4().hex[:8]}"):

        async def settled() -> re.Match[str] | None:
            text = log.read_text(errors="replace") if log.exists() else ""
            return re.search(r"garbage collector: (\d+) objects frozen, a collection every (\d+) new", text)

        found = await eventually(settled, within=60, every=0.5)
    assert int(found[1]) > 50_000  # the modules, the SDK's runtime, the workflows checked for the sandbox
    assert int(found[2]) == 20_000
