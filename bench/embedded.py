"""The embedded stack a benchmark runs on: PostgreSQL and the Temporal dev server (persisting to a file, as `make
dev` does) in the benchmark's work directory, and the settings of a service on them."""

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from batch_exports.crypto import generate_key
from batch_exports.settings import Settings
from batch_exports.store import db
from entrypoints.embedded import EmbeddedPostgres, TemporalDevServer, free_port


@dataclass(frozen=True)
class BenchStack:
    settings: Settings
    postgres: EmbeddedPostgres
    server: TemporalDevServer


@contextlib.contextmanager
def embedded_stack(work: Path, **settings: Any) -> Iterator[BenchStack]:
    """The stack under `work`, with `TEMPORAL_ADDRESS` pointing at its server and its database migrated; the
    settings have a fresh encryption key, files under `work`, and `settings` over the defaults."""
    with (
        EmbeddedPostgres(work / "postgres", free_port()).start() as postgres,
        TemporalDevServer(work / "temporal.db", free_port(), ui_port=None).start() as server,
    ):
        os.environ["TEMPORAL_ADDRESS"] = server.address
        configured = Settings(
            database_url=postgres.create_database("batch_exports"),
            encryption_key=SecretStr(generate_key()),
            file_destination_root=work / "exports",
            data_dir=work,
            **settings,
        )
        db.migrate(configured.database_url)
        yield BenchStack(configured, postgres, server)
