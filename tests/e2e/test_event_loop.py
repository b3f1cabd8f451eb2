"""The worker and the gateway, as the processes they are in production, run on the loop `BATCH_EXPORTS_EVENT_LOOP`
names (`batch_exports.event_loop`), and say which at startup: uvloop unless told otherwise.

The stack of the other end-to-end tests runs in the test session's loop; these start `python worker.py` and
`python -m api`, which the tests of workflows through worker processes (`test_two_workers`, `test_observability`)
also run, on the default loop."""

import re
import uuid
from pathlib import Path

import aiohttp

from tests.support.helpers import eventually
from tests.support.processes import gateway_process, worker_process
from tests.support.stack import Project

ACCESS_LINE = re.compile(
    r'aiohttp\.access: \S+ \[\d\d/\w{3}/\d{4}:[\d:]{8} [+-]\d{4}\] "GET /api/schema/ HTTP/1\.1" 200 '
)
"""aiohttp's access line (`api.access_log`): address, start time, request line, status, size, referer, agent."""


def logged(log: Path, pattern: str | re.Pattern[str]) -> re.Match[str] | None:
    return re.search(pattern, log.read_text(errors="replace") if log.exists() else "")


async def appears(log: Path, pattern: str | re.Pattern[str]) -> re.Match[str]:
    async def found() -> re.Match[str] | None:
        return logged(log, pattern)

    return await eventually(found, within=60, every=0.5)


async def test_the_worker_and_the_gateway_run_on_uvloop(project: Project, work_dir: Path) -> None:
    scratch = work_dir / f"event-loop-{uuid.uuid4().hex[:8]}"
    scratch.mkdir()
    settings = project.stack.settings
    with (
        worker_process(settings, scratch / "worker.log", task_queue=f"loop-{uuid.uuid4().hex[:8]}"),
        gateway_process(settings, scratch / "gateway.log") as gateway,
    ):
        async with aiohttp.ClientSession() as http, http.get(f"{gateway.url}/api/schema/") as response:
            assert response.status == 200  # it serves on that loop
        assert (await appears(scratch / "gateway.log", r"gateway: event loop (\S+)"))[1] == "uvloop.Loop"
        assert (await appears(scratch / "worker.log", r"worker: event loop (\S+)"))[1] == "uvloop.Loop"
        await appears(scratch / "gateway.log", ACCESS_LINE)


async def test_the_standard_library_loop_is_a_setting_away(project: Project, work_dir: Path) -> None:
    log = work_dir / f"gateway-asyncio-{uuid.uuid4().hex[:8]}.log"
    with gateway_process(project.stack.settings, log, event_loop="asyncio"):
        loop = (await appears(log, r"gateway: event loop (\S+)"))[1]
    assert loop == "asyncio.unix_events._UnixSelectorEventLoop"
