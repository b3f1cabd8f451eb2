"""BigQuery for the end-to-end tier: one bqemulator per test session (per xdist worker: a free port, a scratch
directory of its own), started when a test first asks for it, stopped at the end; and the official client the
tests read it back with."""

import asyncio
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from entrypoints.bigquery import PROJECT, BigQueryEmulator, throwaway_key
from tests.support.destinations import Target
from tests.support.stack import Project

KEY = throwaway_key()
"""A PEM key of the right form: the config checks it, and the worker sends no credentials to an emulator."""


@contextmanager
def running_bigquery(work_dir: Path, port: int) -> Iterator[BigQueryEmulator]:
    with BigQueryEmulator(work_dir, port).start() as emulator:
        yield emulator


def client_of(emulator: BigQueryEmulator) -> bigquery.Client:
    return bigquery.Client(project=PROJECT, credentials=AnonymousCredentials(),
                           client_options=ClientOptions(api_endpoint=emulator.url))  # fmt: skip


def new_dataset(client: bigquery.Client) -> str:
    """A dataset of the test's own."""
    name = f"d{uuid.uuid4().hex[:12]}"
    client.create_dataset(f"{PROJECT}.{name}")
    return name


def bigquery_config(dataset: str, table: str = "events", **fields: Any) -> dict[str, Any]:
    return {"project_id": PROJECT, "dataset_id": dataset, "table_id": table, "private_key": KEY,
            "private_key_id": f"key-{uuid.uuid4().hex}", "client_email": f"exports@{PROJECT}.iam.gserviceaccount.com",
            **fields}  # fmt: skip


def rows(client: bigquery.Client, dataset: str, table: str = "events") -> list[dict[str, Any]]:
    return [dict(row) for row in client.query(f"SELECT * FROM `{PROJECT}.{dataset}.{table}`").result()]


class BigQueryTarget(Target):
    """The BigQuery destination in the contract suite: a dataset of its own on the session's emulator."""

    type = "BigQuery"
    checkpoints = False  # staged: nothing is in the table before the apply

    def __init__(self, project: Project, emulator: BigQueryEmulator) -> None:
        super().__init__(project)
        self.client = client_of(emulator)

    async def config(self) -> dict[str, Any]:
        return bigquery_config(await asyncio.to_thread(new_dataset, self.client), use_json_type=True)

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "dataset_id": f"{config['dataset_id']}_missing"}, "Not found"

    async def held(self, config: dict[str, Any]) -> list[str]:
        def read() -> list[str]:
            tables = {t.table_id for t in self.client.list_tables(config["dataset_id"])}
            if config["table_id"] not in tables:
                return []
            return [row["uuid"] for row in rows(self.client, config["dataset_id"], config["table_id"])]

        return await asyncio.to_thread(read)

    def secrets(self, config: dict[str, Any]) -> list[str]:
        return [config["private_key"], config["private_key_id"]]
