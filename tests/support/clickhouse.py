"""ClickHouse for the tests: the stand-in HTTP layer over the real engine (`clickhouse_server`), on loopback.

`BATCH_EXPORTS_TEST_CLICKHOUSE_URL` (with `..._USER`, `..._PASSWORD`) names a real server to run the same tests
against instead; each test then works in a database of its own there.
"""

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from connectors.sources.clickhouse.http import ClickHouse, ClickHouseServer
from entrypoints.embedded import LOOPBACK, ChildProcess, free_port, wait_for_port

USER = "exports"
PASSWORD = "clickhouse-secret-for-tests"
GIVEN = "BATCH_EXPORTS_TEST_CLICKHOUSE_URL"


@dataclass(frozen=True)
class ClickHouseAccount:
    """Where the tests reach ClickHouse, and as whom."""

    url: str
    user: str = USER
    password: str = PASSWORD
    real: bool = False
    """A real ClickHouse server (named by `BATCH_EXPORTS_TEST_CLICKHOUSE_URL`), not the stand-in."""

    @classmethod
    def given(cls) -> "ClickHouseAccount | None":
        """The real server the environment names (`..._URL`, `..._USER`, `..._PASSWORD`), if any."""
        if not (url := os.environ.get(GIVEN)):
            return None
        user = os.environ.get("BATCH_EXPORTS_TEST_CLICKHOUSE_USER", "default")
        return cls(url, user, os.environ.get("BATCH_EXPORTS_TEST_CLICKHOUSE_PASSWORD", ""), real=True)

    def client(self, database: str = "default", **settings: float) -> ClickHouse:
        return ClickHouse(ClickHouseServer(self.url, self.user, self.password, database, **settings))  # type: ignore[arg-type]


class ClickHouseStandIn(ChildProcess):
    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.log = work_dir / "clickhouse.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def account(self) -> ClickHouseAccount:
        return ClickHouseAccount(self.url)

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
