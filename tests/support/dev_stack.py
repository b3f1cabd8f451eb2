"""`make dev` launched as a person launches it, on free ports and a data directory of the test's own."""

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
import pytest

from entrypoints.embedded import LOOPBACK, free_port


def get_json(url: str, key: str | None = None) -> Any:
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def post_json(url: str, body: Any, key: str | None = None) -> Any:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers=headers, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


PORTS = ("API", "TEMPORAL", "TEMPORAL_UI", "POSTGRES", "WORKER_METRICS")


def clean_environment() -> dict[str, str]:
    """This process's environment without the service's and Temporal's variables: a newcomer's shell."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("BATCH_EXPORTS_", "TEMPORAL_"))}


class DevStack:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.ports = {name: free_port() for name in PORTS}
        self.env = {
            **clean_environment(),
            **{f"BATCH_EXPORTS_{name}_PORT": str(port) for name, port in self.ports.items()},
            "BATCH_EXPORTS_DATA_DIR": str(data_dir),
            "BATCH_EXPORTS_DEV_API_KEY": "phx_launcher_test",
        }
        self.api = f"http://{LOOPBACK}:{self.ports['API']}"
        self.output = data_dir / "dev-output.log"

    def launch(self) -> subprocess.Popen[bytes]:
        with self.output.open("ab") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "entrypoints.dev"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def start(self) -> subprocess.Popen[bytes]:
        process = self.launch()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert process.poll() is None, self.output.read_text()
            try:
                if get_json(self.api + "/_health")["status"] == "ok":
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


def typed(cwd: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """A command typed in a newcomer's shell at the root of a checkout (`cwd`) whose `.data/` `make dev` uses."""
    return subprocess.run(command, cwd=cwd, env=clean_environment(), capture_output=True, text=True, timeout=180)
