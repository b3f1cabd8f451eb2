"""Destinations the tests write to (a PostgreSQL database of a test's own, buckets on the S3 API), and each
destination as the contract suite drives it (`Target`)."""

import asyncio
import base64
import json
import uuid
from abc import ABC, abstractmethod
from datetime import UTC, datetime
from typing import Any, ClassVar
from urllib.parse import urlparse

import asyncpg
import pyarrow as pa
from azure.storage.blob.aio import BlobServiceClient as AsyncBlobServiceClient
from deltalake import DeltaTable
from pyiceberg.table import StaticTable

from connectors.destinations.http import BATCH_EVENTS
from entrypoints.azurite import KEY, Azurite
from tests.support.helpers import eventually
from tests.support.receiver import Receiver
from tests.support.seaweed import SeaweedS3
from tests.support.stack import Project


async def postgres_database(project: Project, suffix: str = "") -> tuple[dict[str, Any], str]:
    """A database of its own for this test, owned by a user of its own (whose name and password are secrets
    no error may show), the config that reaches it, and a superuser's DSN of it."""
    name = f"destination_{project.id}{f'_{suffix}' if suffix else ''}"
    user, password = f"exporter_{uuid.uuid4().hex[:12]}", f"pw-{uuid.uuid4().hex}"
    await project.stack.pool.execute(f"CREATE USER {user} PASSWORD '{password}'")
    await project.stack.pool.execute(f'CREATE DATABASE "{name}" OWNER {user}')
    url = urlparse(project.stack.settings.database_url)
    config = {"host": url.hostname, "port": url.port, "database": name, "schema": "public", "table_name": "events",
              "user": user, "password": password}  # fmt: skip
    return config, url._replace(path=f"/{name}").geturl()


def person_batch(version: int) -> pa.RecordBatch:
    """Ada's person row at `version`, as the persons source gives it."""
    return pa.record_batch({
        "team_id": pa.array([1], pa.int64()), "distinct_id": ["ada"], "person_id": [str(uuid.uuid4())],
        "properties": [json.dumps({"v": version})], "person_version": pa.array([version], pa.int64()),
        "person_distinct_id_version": pa.array([0], pa.int64()), "is_deleted": [False],
        "created_at": pa.array([datetime.now(UTC)], pa.timestamp("us", tz="UTC")),
    })  # fmt: skip


async def bucket(s3: Any, project: Project) -> str:
    name = f"exports-{project.id}-{uuid.uuid4().hex[:6]}"

    async def created() -> bool:
        try:
            await s3.create_bucket(Bucket=name)
            return True
        except Exception:  # the gateway may still be starting
            return False

    await eventually(created, within=30, every=0.5)
    return name


def s3_config(service: SeaweedS3, bucket_name: str, **fields: Any) -> dict[str, Any]:
    credentials = {"aws_access_key_id": service.access_key_id, "aws_secret_access_key": service.secret_access_key}
    return {"bucket_name": bucket_name, "endpoint_url": service.endpoint_url, **credentials, **fields}


async def objects(s3: Any, bucket_name: str) -> dict[str, bytes]:
    listed = await s3.list_objects_v2(Bucket=bucket_name)
    found = {}
    for item in listed.get("Contents", []):
        response = await s3.get_object(Bucket=bucket_name, Key=item["Key"])
        async with response["Body"] as body:
            found[item["Key"]] = await body.read()
    return found


class Target(ABC):
    """One destination as the contract suite drives it: a fresh place to write, and what that place holds."""

    type: str
    checkpoints = True
    """Whether a part of an interval is there for good before the whole is (files, POSTs): a resumed attempt
    then goes on after it. Where nothing is (a staged load), the resumed attempt writes the interval again."""

    def __init__(self, project: Project) -> None:
        self.project = project

    @abstractmethod
    async def config(self) -> dict[str, Any]:
        """A working config of a place of its own."""

    @abstractmethod
    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """A config only the user can fix, and words of the provider's own message about it."""

    @abstractmethod
    async def held(self, config: dict[str, Any]) -> list[str]:
        """The uuids of the records the destination holds (repeats kept), as its readers would see them."""

    def secrets(self, config: dict[str, Any]) -> list[str]:
        """The secret values of `config`, which no error, log or response may show."""
        s3_keys = ("aws_access_key_id", "aws_secret_access_key")
        fields = {"S3Compatible": s3_keys, "Postgres": ("user", "password"), "HTTP": ("token",), "Iceberg": s3_keys,
                  "DeltaLake": s3_keys, "AzureBlob": ("connection_string", "account_key")}  # fmt: skip
        return [str(config[name]) for name in fields.get(self.type, ()) if config.get(name)]

    def resend_allowance(self) -> int:
        """How many records a resumed attempt may deliver again (a receiver that deduplicates holds them once)."""
        return 0


def _uuids_of_lines(data: bytes) -> list[str]:
    return [json.loads(line)["uuid"] for line in data.splitlines() if line.strip()]


class FileTarget(Target):
    type = "File"

    async def config(self) -> dict[str, Any]:
        return {"path": f"contract-{self.project.id}-{uuid.uuid4().hex[:6]}", "max_file_size_mb": 1}

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        blocker = self.project.files / f"a-file-{uuid.uuid4().hex[:6]}"
        blocker.parent.mkdir(parents=True, exist_ok=True)
        blocker.write_text("in the way")
        return {**config, "path": f"{blocker.name}/under-a-file"}, "cannot write to"

    async def held(self, config: dict[str, Any]) -> list[str]:
        directory = self.project.files / config["path"]
        if not directory.exists():
            return []
        files = sorted(p for p in directory.iterdir() if p.suffix == ".jsonl")
        return [u for path in files for u in _uuids_of_lines(path.read_bytes())]


class S3Target(Target):
    type = "S3Compatible"

    def __init__(self, project: Project, s3: Any, service: SeaweedS3) -> None:
        super().__init__(project)
        self.s3, self.service = s3, service

    async def config(self) -> dict[str, Any]:
        return s3_config(self.service, await bucket(self.s3, self.project), max_file_size_mb=1)

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "aws_secret_access_key": "not-the-secret-key"}, "SignatureDoesNotMatch"

    async def held(self, config: dict[str, Any]) -> list[str]:
        stored = await objects(self.s3, config["bucket_name"])
        return [u for key in sorted(stored) if key.endswith(".jsonl") for u in _uuids_of_lines(stored[key])]


class PostgresTarget(Target):
    type = "Postgres"
    checkpoints = False

    async def config(self) -> dict[str, Any]:
        config, self.dsn = await postgres_database(self.project, suffix=uuid.uuid4().hex[:6])
        return config

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "database": f"{config['database']}_missing"}, "does not exist"

    async def held(self, config: dict[str, Any]) -> list[str]:
        conn = await asyncpg.connect(self.dsn)
        try:
            if not await conn.fetchval("SELECT to_regclass('public.events')"):
                return []
            return [str(row["uuid"]) for row in await conn.fetch("SELECT uuid FROM public.events")]
        finally:
            await conn.close()


class HttpTarget(Target):
    type = "HTTP"

    def __init__(self, project: Project, receiver: Receiver) -> None:
        super().__init__(project)
        self.receiver = receiver

    async def config(self) -> dict[str, Any]:
        return {"url": self.receiver.url, "token": self.receiver.token}

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "token": "phc_not_the_token"}, "answered 401"

    async def held(self, config: dict[str, Any]) -> list[str]:
        return sorted(set(self.receiver.deliveries))  # a receiver deduplicates by uuid, as PostHog does

    def resend_allowance(self) -> int:
        return BATCH_EVENTS  # the POST in flight when the attempt stopped


def lake_config(service: SeaweedS3, bucket_name: str, **fields: Any) -> dict[str, Any]:
    """A table destination's config with its files in `bucket_name` on SeaweedFS."""
    return {"storage": "S3Compatible", **s3_config(service, bucket_name), **fields}


def _iceberg_properties(service: SeaweedS3 | None) -> dict[str, str]:
    if service is None:
        return {}
    return {"s3.endpoint": service.endpoint_url, "s3.access-key-id": service.access_key_id,
            "s3.secret-access-key": service.secret_access_key, "s3.region": "us-east-1"}  # fmt: skip


async def iceberg_metadata(project: Project, config: dict[str, Any], service: SeaweedS3 | None = None) -> Any:
    """The Iceberg table `config` names as pyiceberg reads it from its current metadata file (None: no table)."""
    where = f"s3://{config['bucket_name']}/%" if config["storage"] != "File" else f"file://%/{config['path']}/%"
    try:
        location = await project.stack.pool.fetchval(
            "SELECT metadata_location FROM iceberg_catalog.iceberg_tables WHERE table_namespace = $1 "
            "AND table_name = $2 AND metadata_location LIKE $3",
            config.get("namespace", "posthog"), config["table_name"], where,
        )  # fmt: skip
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):  # no Iceberg table made yet
        return None
    if location is None:
        return None
    return await asyncio.to_thread(StaticTable.from_metadata, location, properties=_iceberg_properties(service))


def delta_storage(service: SeaweedS3) -> dict[str, str]:
    return {
        "AWS_ENDPOINT_URL": service.endpoint_url,
        "AWS_ACCESS_KEY_ID": service.access_key_id,
        "AWS_SECRET_ACCESS_KEY": service.secret_access_key,
        "AWS_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }


def delta_location(project: Project, config: dict[str, Any], service: SeaweedS3 | None) -> tuple[str, Any]:
    """The Delta table's URI and storage options."""
    if config["storage"] == "File":
        uri = str(project.files / config["path"] / config["table_name"])
        options = None
    else:
        assert service is not None
        parts = [config["bucket_name"], *[p for p in config.get("prefix", "").split("/") if p], config["table_name"]]
        uri, options = "s3://" + "/".join(parts), delta_storage(service)
    return uri, options


async def read_table(kind: str, project: Project, config: dict[str, Any], service: SeaweedS3 | None) -> pa.Table | None:
    """The rows of the table `config` names, read by the table format's own reader (pyiceberg's scan,
    `DeltaTable.to_pyarrow_table`); None when there is no such table."""
    if kind == "Iceberg":
        table = await iceberg_metadata(project, config, service)
        return None if table is None else await asyncio.to_thread(lambda: table.scan().to_arrow())
    uri, options = delta_location(project, config, service)

    def read() -> pa.Table | None:
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            return None
        return DeltaTable(uri, storage_options=options).to_pyarrow_table()

    return await asyncio.to_thread(read)


async def table_commits(
    kind: str, project: Project, config: dict[str, Any], service: SeaweedS3 | None
) -> list[dict[str, Any]]:
    """The table's commits, oldest first, with what each says of itself: Iceberg's snapshot summaries, Delta's
    commit infos."""
    if kind == "Iceberg":
        table = await iceberg_metadata(project, config, service)
        return [] if table is None else [dict(s.summary.additional_properties) for s in table.snapshots()]
    uri, options = delta_location(project, config, service)
    return list(reversed(await asyncio.to_thread(lambda: DeltaTable(uri, storage_options=options).history())))


class TableTarget(Target):
    """An Iceberg or Delta Lake table on SeaweedFS."""

    checkpoints = False
    refused: ClassVar[dict[str, str]] = {"Iceberg": "ACCESS_DENIED", "DeltaLake": "SignatureDoesNotMatch"}
    """What a refused key is called by the S3 client each uses (pyarrow's for Iceberg, object_store's for Delta)."""

    def __init__(self, project: Project, kind: str, s3: Any, service: SeaweedS3) -> None:
        super().__init__(project)
        self.type, self.s3, self.service = kind, s3, service

    async def config(self) -> dict[str, Any]:
        return lake_config(self.service, await bucket(self.s3, self.project), prefix="lake", table_name="events")

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        return {**config, "aws_secret_access_key": "not-the-secret-key"}, self.refused[self.type]

    async def held(self, config: dict[str, Any]) -> list[str]:
        table = await read_table(self.type, self.project, config, self.service)
        return [] if table is None else [str(u) for u in table.column("uuid").to_pylist()]


async def azure_container(azurite: Azurite, project: Project) -> str:
    """A new container on Azurite, for one test."""
    name = f"exports-{project.id}-{uuid.uuid4().hex[:6]}"
    async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as client:
        await client.create_container(name)
    return name


async def blobs(azurite: Azurite, container: str) -> dict[str, bytes]:
    """Every committed blob of the container, read with the Azure SDK."""
    found = {}
    async with AsyncBlobServiceClient.from_connection_string(azurite.connection_string) as client:
        listing = client.get_container_client(container)
        async for item in listing.list_blobs():
            found[item.name] = await (await listing.download_blob(item.name)).readall()
    return found


class AzureBlobTarget(Target):
    type = "AzureBlob"

    def __init__(self, project: Project, azurite: Azurite) -> None:
        super().__init__(project)
        self.azurite = azurite

    async def config(self) -> dict[str, Any]:
        container = await azure_container(self.azurite, self.project)
        return {"container_name": container, "connection_string": self.azurite.connection_string, "max_file_size_mb": 1}

    def broken(self, config: dict[str, Any]) -> tuple[dict[str, Any], str]:
        wrong = self.azurite.connection_string.replace(KEY, base64.b64encode(b"not the account key").decode())
        return {**config, "connection_string": wrong}, "AuthorizationFailure"

    async def held(self, config: dict[str, Any]) -> list[str]:
        stored = await blobs(self.azurite, config["container_name"])
        return [u for name in sorted(stored) if name.endswith(".jsonl") for u in _uuids_of_lines(stored[name])]
