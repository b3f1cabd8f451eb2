"""ClickHouse for the tests: the stand-in HTTP layer over the real engine (`clickhouse_server`), on loopback.

`BATCH_EXPORTS_TEST_CLICKHOUSE_URL` (with `..._USER`, `..._PASSWORD`) names a real server to run the same tests
against instead; each test then works in a database of its own there.
"""

import os
import subprocess
import sys
from pathlib import Path
from typing import Self

from entrypoints.embedded import LOOPBACK, ChildProcess, free_port, wait_for_port

USER = "exports"
PASSWORD = "clickhouse-secret-for-tests"


class ClickHouseStandIn(ChildProcess):
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.log = work_dir / "clickhouse.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [sys.executable, "-m", "tests.support.clickhouse_server", str(self.port), str(self.work_dir / "data"),
                USER, PASSWORD]  # fmt: skip
        with self.log.open("ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=Path(__file__).parents[2],
                                       env={**os.environ, "HOME": str(self.work_dir)})  # fmt: skip
        self._started(process)
        wait_for_port(self.port, process, "the ClickHouse stand-in", self.log)
        return self
