"""Azure Blob Storage on loopback: Azurite, Microsoft's emulator, which `make` installs under `.tools/` (npm).

The test suite starts one on a free port (`tests/e2e/conftest.py`); `make azurite` starts one beside `make dev`
on port 10000 (`BATCH_EXPORTS_AZURITE_PORT`), with its data under `.data/azurite`, creates the container
`exports` and prints the config of an `AzureBlob` destination that writes there.
"""

import contextlib
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

from azure.core.exceptions import ResourceExistsError
from azure.storage.blob import BlobServiceClient

from batch_exports.settings import Settings
from entrypoints.dev_checks import NotStarted, Port, check_ports
from entrypoints.embedded import LOOPBACK, ChildProcess, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / ".tools" / "node_modules" / ".bin" / "azurite-blob"
ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
"""The emulator's well-known development account and key (public, in Microsoft's documentation)."""


class Azurite(ChildProcess):
    def __init__(self, work_dir: Path, port: int) -> None:
        self.work_dir = work_dir
        self.port = port
        self.log = work_dir / "azurite.log"

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};BlobEndpoint={self.endpoint_url};"

    def start(self) -> Self:
        if not AZURITE.exists():
            raise RuntimeError(f"Azurite is missing at {AZURITE}: `make {AZURITE.relative_to(ROOT)}` installs it (npm)")
        self.work_dir.mkdir(parents=True, exist_ok=True)
        args = [str(AZURITE), "--blobHost", LOOPBACK, "--blobPort", str(self.port), "--location", str(self.work_dir),
                "--silent", "--skipApiVersionCheck", "--loose", "--disableTelemetry"]  # fmt: skip
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, self.process, "Azurite", self.log)
        return self


def main() -> None:
    settings = Settings()
    try:
        check_ports([Port("BATCH_EXPORTS_AZURITE_PORT", LOOPBACK, settings.azurite_port)])
    except NotStarted as e:
        raise SystemExit(f"make azurite: {e}") from None
    with Azurite(settings.data_dir / "azurite", settings.azurite_port).start() as azurite:
        client = BlobServiceClient.from_connection_string(azurite.connection_string)
        with client, contextlib.suppress(ResourceExistsError):
            client.create_container("exports")
        config = {"container_name": "exports", "connection_string": azurite.connection_string}
        print(f"Azurite is listening on {azurite.endpoint_url}; an AzureBlob destination config that writes to it:")
        print(json.dumps(config))
        print("Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while azurite.process is not None and azurite.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
