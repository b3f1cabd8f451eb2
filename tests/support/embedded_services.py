"""The embedded provider: PostgreSQL and the Temporal dev server as local processes on free ports."""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from entrypoints.embedded import EmbeddedPostgres, TemporalDevServer, free_port
from tests.support.services import Services


@contextmanager
def embedded_services(work_dir: Path) -> Iterator[Services]:
    with (
        EmbeddedPostgres(work_dir / "postgres", free_port()).start() as postgres,
        TemporalDevServer(None, free_port(), ui_port=None, log_dir=work_dir).start() as temporal,
    ):
        yield Services(database_url=postgres.create_database("batch_exports"), temporal_address=temporal.address)
