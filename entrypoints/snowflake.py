"""Snowflake on loopback: fakesnow's server (DuckDB inside), from a venv of its own under `.tools/fakesnow/` that
`make` builds (its DuckDB and sqlglot pins differ from the project's), reached by the official connector over
`http://`.

The test suite starts one on a free port (`tests/support/snowflake.py`); `make snowflake` starts one beside `make
dev` on port 8085 (`BATCH_EXPORTS_FAKESNOW_PORT`) and prints the `BATCH_EXPORTS_SNOWFLAKE_URL` the worker needs
and the config of a `Snowflake` destination that writes there. Its data lives in memory: it is gone when it stops.
fakesnow takes any user and password (or key) and creates a database and schema when a session names them.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

from batch_exports.settings import Settings
from entrypoints.dev_checks import NotStarted, Port, check_ports
from entrypoints.embedded import LOOPBACK, ChildProcess, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
FAKESNOW = ROOT / ".tools" / "fakesnow" / "bin" / "fakesnow"


class Fakesnow(ChildProcess):
    def __init__(self, work_dir: Path, port: int) -> None:
        self.work_dir = work_dir
        self.port = port
        self.log = work_dir / "fakesnow.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        if not FAKESNOW.exists():
            raise RuntimeError(f"fakesnow is missing at {FAKESNOW}: `make {FAKESNOW.relative_to(ROOT)}` installs it")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # Its stage files (a temporary directory) and anything it would keep at home stay in its own directory.
        env = {**os.environ, "TMPDIR": str(self.work_dir), "HOME": str(self.work_dir)}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(FAKESNOW), "-s", "-p", str(self.port), "--host", LOOPBACK],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env,
            )  # fmt: skip
        wait_for_port(self.port, self.process, "fakesnow", self.log)
        return self


def destination_config(table_name: str = "events") -> dict[str, str]:
    """A `Snowflake` destination config that works against fakesnow (any password does)."""
    return {"account": "local-fakesnow", "user": "exporter", "password": "any-password", "database": "EXPORTS",
            "warehouse": "COMPUTE", "schema": "PUBLIC", "table_name": table_name}  # fmt: skip


def main() -> None:
    settings = Settings()
    try:
        check_ports([Port("BATCH_EXPORTS_FAKESNOW_PORT", LOOPBACK, settings.fakesnow_port)])
    except NotStarted as e:
        raise SystemExit(f"make snowflake: {e}") from None
    with Fakesnow(settings.data_dir / "fakesnow", settings.fakesnow_port).start() as fakesnow:
        print(f"fakesnow is listening on {fakesnow.url}. Start `make dev` (or the worker and the gateway) with")
        print(f"  BATCH_EXPORTS_SNOWFLAKE_URL={fakesnow.url}")
        print("(and BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS=true, which `make dev` sets) and give a Snowflake")
        print("destination this config:")
        print(json.dumps(destination_config()))
        print("Ctrl-C stops it (its data is in memory).", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while fakesnow.process is not None and fakesnow.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
