"""BigQuery on loopback: `bqemulator` (DuckDB inside), which `make` installs in a venv of its own under
`.tools/bqemulator/` (it pins a sqlglot the project's own cannot share).

The test suite starts one on a free port (`tests/support/bigquery.py`); `make bigquery` starts one beside
`make dev` on port 9050 (`BATCH_EXPORTS_BIGQUERY_PORT`; the worker finds it through `BATCH_EXPORTS_BIGQUERY_URL`),
creates the dataset `exports` and prints the setting the worker needs and the config of a `BigQuery` destination
that writes there.

Nothing is downloaded when it starts: DuckDB's `avro` and `spatial` extensions, which the emulator loads, are
installed from their wheels' files (`duckdb-extension-*`, the same version as duckdb) into `$HOME/.duckdb`,
with `HOME` the emulator's own scratch directory.
"""

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Self

from entrypoints.dev_checks import NotStarted, Port, check_ports
from entrypoints.embedded import LOOPBACK, ChildProcess, wait_for_port

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".tools" / "bqemulator"
PROJECT = "local-project"
"""The emulator's default project (any name: it takes every project it is asked for)."""

_INSTALL_EXTENSIONS = """
import pathlib, duckdb, duckdb_extension_avro, duckdb_extension_spatial
for module in (duckdb_extension_avro, duckdb_extension_spatial):
    (path,) = pathlib.Path(module.__file__).parent.glob("extensions/*/*.duckdb_extension")
    duckdb.sql(f"INSTALL '{path}'")
"""


def throwaway_key() -> str:
    """A new RSA key in PEM, for configs that go to an emulator (which takes no credentials: none are sent)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    return pem.decode()


class BigQueryEmulator(ChildProcess):
    def __init__(self, work_dir: Path, port: int) -> None:
        self.work_dir = work_dir
        self.port = port
        self.log = work_dir / "bqemulator.log"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> Self:
        executable = VENV / "bin" / "bqemulator"
        if not executable.exists():
            raise RuntimeError(
                f"bqemulator is missing at {executable}: `make {executable.relative_to(ROOT)}` installs it"
            )
        home = self.work_dir / "home"
        home.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "HOME": str(home)}
        subprocess.run([str(VENV / "bin" / "python"), "-c", _INSTALL_EXTENSIONS], env=env, check=True)
        args = [str(executable), "start", "--rest-host", LOOPBACK, "--rest-port", str(self.port),
                "--grpc-host", LOOPBACK, "--grpc-port", "0", "--project", PROJECT, "--ephemeral",
                "--log-level", "warning"]  # fmt: skip
        with self.log.open("ab") as out:
            process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=self.work_dir,
                                       start_new_session=True)  # fmt: skip
        self._started(process)
        wait_for_port(self.port, process, "bqemulator", self.log)
        return self


def main() -> None:
    from google.api_core.client_options import ClientOptions
    from google.auth.credentials import AnonymousCredentials
    from google.cloud import bigquery

    from batch_exports.settings import Settings

    settings = Settings()
    try:
        check_ports([Port("BATCH_EXPORTS_BIGQUERY_PORT", LOOPBACK, settings.bigquery_port)])
    except NotStarted as e:
        raise SystemExit(f"make bigquery: {e}") from None
    with BigQueryEmulator(settings.data_dir / "bqemulator", settings.bigquery_port).start() as emulator:
        client = bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                                 client_options=ClientOptions(api_endpoint=emulator.url))  # fmt: skip
        client.create_dataset("exports", exists_ok=True)
        config = {"project_id": PROJECT, "dataset_id": "exports", "table_id": "events", "use_json_type": True,
                  "private_key": throwaway_key(), "private_key_id": "local",
                  "client_email": f"exports@{PROJECT}.iam.gserviceaccount.com",
                  "token_uri": "https://oauth2.googleapis.com/token"}  # fmt: skip
        print(f"bqemulator is listening on {emulator.url}; start the worker with")
        print(f"BATCH_EXPORTS_BIGQUERY_URL={emulator.url}")
        print("and BATCH_EXPORTS_ALLOW_PRIVATE_DESTINATIONS=true (as `make dev` does); a BigQuery destination config")
        print("that writes to it:")
        print(json.dumps(config))
        print("Ctrl-C stops it.", flush=True)
        signal.signal(signal.SIGTERM, signal.default_int_handler)
        try:
            while emulator.process is not None and emulator.process.poll() is None:
                time.sleep(1)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
