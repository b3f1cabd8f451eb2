"""`make dev`'s launcher as a person uses it: it starts, answers, stops on Ctrl-C, and finds its data again."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from entrypoints.embedded import LOOPBACK, free_port
from tests.support.helpers import temporal_cli_run


def _get(url: str, key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def _post(url: str, body: Any, key: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


class DevStack:
    def __init__(self, data_dir: Path) -> None:
        self.ports = {name: free_port() for name in ("API", "TEMPORAL", "TEMPORAL_UI", "POSTGRES")}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("BATCH_EXPORTS_", "TEMPORAL_"))},
            **{f"BATCH_EXPORTS_{name}_PORT": str(port) for name, port in self.ports.items()},
            "BATCH_EXPORTS_DATA_DIR": str(data_dir),
            "BATCH_EXPORTS_DEV_API_KEY": "phx_launcher_test",
        }
        self.api = f"http://{LOOPBACK}:{self.ports['API']}"
        self.output = data_dir / "dev-output.log"

    def start(self) -> subprocess.Popen[bytes]:
        with self.output.open("ab") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "entrypoints.dev"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, self.output.read_text()
            try:
                if _get(self.api + "/_health")["status"] == "ok":
                    return process
            except OSError:
                pass
            time.sleep(0.2)
        process.kill()
        pytest.fail(f"make dev did not become healthy:\n{self.output.read_text()}")

    def stop(self, process: subprocess.Popen[bytes]) -> None:
        children = psutil.Process(process.pid).children(recursive=True)
        assert children, "the launcher should have started PostgreSQL and Temporal"
        process.send_signal(signal.SIGINT)
        assert process.wait(60) == 0, self.output.read_text()
        _, alive = psutil.wait_procs(children, timeout=10)
        assert alive == [], f"left running after Ctrl-C: {[p.cmdline()[:2] for p in alive]}"


def test_dev_starts_prints_stops_and_restarts_with_its_data(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tmp_path.chmod(0o755)
    stack = DevStack(data_dir)
    process = stack.start()
    try:
        printed = stack.output.read_text()
        assert "phx_launcher_test" in printed and "phc_dev_local" in printed
        assert f"http://{LOOPBACK}:{stack.ports['TEMPORAL_UI']}" in printed
        created = _post(
            stack.api + "/api/environments/1/batch_exports/",
            {"name": "kept", "interval": "day", "destination": {"type": "NoOp"}},
            key="phx_launcher_test",
        )
        with urllib.request.urlopen(f"http://{LOOPBACK}:{stack.ports['TEMPORAL_UI']}", timeout=5) as ui:
            assert ui.status == 200
        # The embedded PostgreSQL takes no connection without its password, kept in the data directory.
        password = data_dir / "postgres.password"
        assert password.stat().st_mode & 0o077 == 0 and password.read_text().strip()
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(host=LOOPBACK, port=stack.ports["POSTGRES"], user="postgres", password="", dbname="x")
    finally:
        stack.stop(process)

    process = stack.start()
    try:
        listed = _get(stack.api + "/api/environments/1/batch_exports/", key="phx_launcher_test")
        assert [e["id"] for e in listed["results"]] == [created["id"]]
        described = temporal_cli_run(
            "schedule", "describe", "--schedule-id", created["id"], address=f"{LOOPBACK}:{stack.ports['TEMPORAL']}"
        )
        assert "batch-export-run" in described
    finally:
        stack.stop(process)
