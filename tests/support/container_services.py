"""The containers provider: the same services from images, with testcontainers (needs a Docker engine)."""

from collections.abc import Iterator
from contextlib import contextmanager

from testcontainers.core.container import DockerContainer
from testcontainers.core.waiting_utils import wait_for_logs
from testcontainers.postgres import PostgresContainer

from entrypoints.embedded import dynamic_config_flags, search_attribute_flags
from tests.support.services import Services

POSTGRES_IMAGE = "postgres:16-alpine"
TEMPORAL_IMAGE = "temporalio/temporal:latest"  # the `temporal` CLI, whose entrypoint is the CLI itself


@contextmanager
def container_services() -> Iterator[Services]:
    temporal = (
        DockerContainer(TEMPORAL_IMAGE)
        .with_command(
            ["server", "start-dev", "--ip", "0.0.0.0", "--headless", *dynamic_config_flags(), *search_attribute_flags()]
        )
        .with_exposed_ports(7233)
    )
    with PostgresContainer(POSTGRES_IMAGE, dbname="batch_exports", driver=None) as postgres, temporal:
        wait_for_logs(temporal, "Temporal Server", timeout=60)
        address = f"{temporal.get_container_host_ip()}:{temporal.get_exposed_port(7233)}"
        yield Services(database_url=postgres.get_connection_url(), temporal_address=address)
