"""A real Prometheus for the tests: Debian's package, unpacked by `install_prometheus.sh` (the Makefile's test
step runs it; so does `binaries()` when the tests run without make), listening on loopback only."""

import json
import shutil
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any, Self

from entrypoints.embedded import LOOPBACK, ChildProcess, free_port, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
UNPACKED = ROOT / ".venv" / "prometheus" / "usr" / "bin"


def binaries() -> tuple[str, str]:
    """Paths of `prometheus` and `promtool`: on PATH, or unpacked from Debian's package into the venv."""
    on_path = shutil.which("prometheus"), shutil.which("promtool")
    if on_path[0] and on_path[1]:
        return on_path[0], on_path[1]
    if not (UNPACKED / "prometheus").exists():
        script = ROOT / "tests" / "support" / "install_prometheus.sh"
        subprocess.run(["sh", str(script), str(UNPACKED.parents[1])], check=True, timeout=600)
    return str(UNPACKED / "prometheus"), str(UNPACKED / "promtool")


class Prometheus(ChildProcess):
    """Prometheus scraping `targets` (job name -> host:port) every second, with `rule_files` evaluated as often."""

    def __init__(self, work_dir: Path, targets: dict[str, list[str]], rule_files: list[Path]) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.log = work_dir / "prometheus.log"
        self.config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": addresses}]} for job, addresses in targets.items()
            ],
        }

    def start(self) -> Self:
        prometheus, _ = binaries()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "prometheus.yml"
        config.write_text(json.dumps(self.config))  # JSON is YAML
        args = [
            prometheus,
            f"--config.file={config}",
            f"--web.listen-address={LOOPBACK}:{self.port}",
            f"--storage.tsdb.path={self.work_dir / 'data'}",
        ]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.process, "Prometheus", self.log)
        return self

    def api(self, path: str, **params: str) -> Any:
        """GET one of Prometheus's HTTP API paths (`/api/v1/...`) and return its `data`."""
        query = urllib.parse.urlencode(params)
        with urllib.request.urlopen(f"http://{LOOPBACK}:{self.port}{path}?{query}", timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]
