"""`AzureBlob`: an interval's files as block blobs in an Azure Storage container, laid out as S3's keys.

Names depend only on the export, the interval and the file's number (`{prefix}/{start}-{end}[-{n}].jsonl[.gz]`,
the prefix templated as S3's), and each blob is written as blocks staged while the interval is read, then
committed by one `Put Block List`: until then the blob is the previous copy or nothing, and then it is the new
one whole. An abandoned upload leaves its blocks uncommitted (the service drops them) and the blob as it was.
Numbered files, the size limit and the manifest are `series.FileSeriesWriter`'s, so a file that is
complete is a checkpoint a retried attempt resumes after, as with S3.

Credentials: a `connection_string`, or `account_name` with `account_key` (and an `endpoint_url` for a service
that is not Azure's own, such as Azurite); the connection string and the key are write-only.
"""

import asyncio
import base64
import contextlib
import uuid
from datetime import datetime
from typing import Any, ClassVar, Self

import aiohttp
from azure.core.credentials import AzureNamedKeyCredential, AzureSasCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
)
from azure.core.pipeline.transport import AioHttpTransport
from azure.storage.blob import BlobBlock
from azure.storage.blob.aio import BlobServiceClient, ContainerClient
from pydantic import Field, ValidationError, field_validator, model_validator

from connectors.destinations.base import (
    ClientLimits,
    Context,
    Destination,
    DestinationUserError,
    Endpoint,
    Step,
    WriteRequest,
)
from connectors.destinations.network.egress import http_session
from connectors.destinations.network.endpoints import ParsedEndpoint, connection_string_settings, parse_endpoint
from connectors.destinations.object_stores.parts import PartedUpload
from connectors.destinations.object_stores.s3 import S3Config, object_prefix
from connectors.destinations.object_stores.series import FilesConfig, FileSeriesWriter, FileUpload, IntervalFiles

BLOCK_BYTES = 8 * 2**20
"""A blob takes at most 50,000 blocks: 8 MiB blocks make blobs of up to 390 GiB."""
BLOCKS_IN_FLIGHT = 4
USER_STATUSES = {400, 401, 403, 404, 409}
"""Answers only the user can act on: a bad name, refused credentials, no such container or account."""


class AzureBlobConfig(FilesConfig):
    """Blobs in a container: an interval's files (see `FilesConfig`), each committed whole."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"connection_string", "account_key"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"account_name", "endpoint_url"})
    """Where the key is sent (a connection string names its own endpoint): a change needs the key again."""

    container_name: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9]+(-[a-z0-9]+)*$")
    prefix: str = Field("", max_length=500, description="Templated as S3's prefix.")
    connection_string: str | None = Field(None, min_length=1, max_length=4000)
    account_name: str | None = Field(None, pattern=r"^[a-z0-9]{3,24}$")
    account_key: str | None = Field(None, min_length=1, max_length=200)
    endpoint_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$",
        description="The blob service's URL with account_name (default https://{account_name}.blob.core.windows.net).",
    )  # fmt: skip

    @field_validator("prefix")
    @classmethod
    def _s3_template(cls, value: str) -> str:
        """The S3 destination's template rules, checked by the S3 config itself."""
        try:
            S3Config(bucket_name="bucket", aws_access_key_id="-", aws_secret_access_key="-", prefix=value)
        except ValidationError as error:
            raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value

    @field_validator("connection_string")
    @classmethod
    def _key_values(cls, value: str | None) -> str | None:
        if value is None:
            return value
        settings = connection_string_settings(value)
        if "AccountName" not in settings or not ({"AccountKey", "SharedAccessSignature"} & set(settings)):
            raise ValueError("a connection string names AccountName=...;AccountKey=... (and BlobEndpoint=... or not)")
        try:
            _blob_url(settings)
        except ValueError as error:
            raise ValueError(f"its blob endpoint {error}") from None
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _one_reading(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint(value)
        return value

    @model_validator(mode="after")
    def _one_credential(self) -> Self:
        if self.connection_string is None and (self.account_name is None or self.account_key is None):
            raise ValueError("give connection_string, or account_name and account_key")
        if self.connection_string is not None and (self.account_name or self.account_key or self.endpoint_url):
            raise ValueError("give connection_string, or account_name and account_key (with endpoint_url), not both")
        return self

    def blob_endpoint(self) -> tuple[ParsedEndpoint, str]:
        """The blob service's URL, parsed, and the config field that names it."""
        if self.connection_string is None:
            url = self.endpoint_url or f"https://{self.account_name}.blob.core.windows.net"
            return parse_endpoint(url), "endpoint_url" if self.endpoint_url else "account_name"
        return _blob_url(connection_string_settings(self.connection_string)), "connection_string"

    def endpoint(self) -> Endpoint | None:
        parsed, field = self.blob_endpoint()
        return Endpoint(parsed.host, field, parsed.port)


def _blob_url(settings: dict[str, str]) -> ParsedEndpoint:
    if endpoint := settings.get("BlobEndpoint"):
        return parse_endpoint(endpoint)
    protocol, suffix = settings.get("DefaultEndpointsProtocol", "https"), settings.get("EndpointSuffix")
    return parse_endpoint(f"{protocol}://{settings.get('AccountName')}.blob.{suffix or 'core.windows.net'}")


def service(config: AzureBlobConfig, limits: ClientLimits, allow_private: bool, retries: int = 3) -> BlobServiceClient:
    """A client of the blob service at the endpoint as parsed here (never the SDK's own reading of a connection
    string), connecting through a pinned, bounded session (`egress`) and following no redirect."""
    endpoint, _ = config.blob_endpoint()
    credential: Any
    if config.connection_string is not None:
        settings = connection_string_settings(config.connection_string)
        if "AccountKey" in settings:
            credential = AzureNamedKeyCredential(settings["AccountName"], settings["AccountKey"])
        else:
            credential = AzureSasCredential(settings["SharedAccessSignature"])
    else:
        assert config.account_name is not None and config.account_key is not None
        credential = AzureNamedKeyCredential(config.account_name, config.account_key)
    session = http_session(allow_private, aiohttp.ClientTimeout(total=None), answer_bytes=limits.answer_bytes)
    return BlobServiceClient(
        endpoint.url,
        credential=credential,
        transport=AioHttpTransport(session=session, session_owner=True),
        permit_redirects=False,
        retry_total=retries,
        connection_timeout=10,
        read_timeout=min(120, limits.call_seconds),
    )


def user_error(error: AzureError, config: AzureBlobConfig) -> DestinationUserError | None:
    """The service's answer, when only the user can act on it (its code and the first line of its message)."""
    status = getattr(error, "status_code", None)
    if isinstance(error, HttpResponseError) and status is not None and 300 <= status < 400:
        where = str(getattr(error.response, "headers", {}).get("Location", ""))
        return DestinationUserError(
            f"Azure Blob Storage answered {status}, a redirect to {where[:200]}; redirects are not followed"
        )
    if isinstance(error, ClientAuthenticationError) or (
        isinstance(error, HttpResponseError) and status in USER_STATUSES
    ):
        said = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        code = getattr(error, "error_code", None) or status
        code = getattr(code, "value", code)  # the SDK's StorageErrorCode: the service's own word
        return DestinationUserError(f"Azure Blob container {config.container_name}: {code}: {said}")
    return None


async def call(config: AzureBlobConfig, request: Any, seconds: float) -> Any:
    """Await a request to the service (its retries included) for at most `seconds`, turning the errors only the
    user can fix into `DestinationUserError`."""
    try:
        async with asyncio.timeout(seconds):
            return await request
    except TimeoutError:
        raise AzureError(f"Azure Blob Storage did not answer within {seconds:g} s "
                         "(BATCH_EXPORTS_DESTINATION_CALL_TIMEOUT_SECONDS)") from None  # fmt: skip
    except AzureError as error:
        if problem := user_error(error, config):
            raise problem from error
        raise


class _Blob(PartedUpload[str]):
    """One block blob: blocks staged (`parts`: a few in flight) while data comes, committed by one block list.
    Staged blocks never committed are dropped by the service."""

    def __init__(self, container: ContainerClient, config: AzureBlobConfig, name: str, seconds: float) -> None:
        super().__init__(BLOCK_BYTES, BLOCKS_IN_FLIGHT)
        self.blob = container.get_blob_client(name)
        self.config, self.seconds = config, seconds
        self._upload = uuid.uuid4().hex  # block ids of one upload: all of the same length

    async def _send_part(self, index: int, body: bytes) -> str:
        block_id = base64.b64encode(f"{self._upload}-{index:06d}".encode()).decode()
        await call(self.config, self.blob.stage_block(block_id, body, length=len(body)), self.seconds)
        return block_id

    async def _complete_parts(self, parts: list[str]) -> None:
        await call(self.config, self.blob.commit_block_list([BlobBlock(block_id=i) for i in parts]), self.seconds)

    async def _send_whole(self, body: bytes) -> None:  # replaces the blob whole
        await call(self.config, self.blob.upload_blob(body, overwrite=True), self.seconds)


class AzureBlobWriter(FileSeriesWriter):
    def __init__(self, config: AzureBlobConfig, table: str, files: IntervalFiles, context: Context) -> None:
        super().__init__(files)
        self.config, self.context = config, context
        self.seconds = context.limits.call_seconds
        self.directory = blob_prefix(config, table, files.start, files.end)
        self._service: BlobServiceClient | None = None

    def blob_name(self, name: str) -> str:
        return f"{self.directory}/{name}" if self.directory else name

    def _container(self) -> ContainerClient:
        if self._service is None:
            self._service = service(self.config, self.context.limits, self.context.allow_private)
        return self._service.get_container_client(self.config.container_name)

    async def _open(self, name: str) -> FileUpload:
        return _Blob(self._container(), self.config, self.blob_name(name), self.seconds)

    async def _exists(self, name: str) -> bool:
        blob = self._container().get_blob_client(self.blob_name(name))
        return bool(await call(self.config, blob.exists(), self.seconds))

    async def _remove(self, names: list[str]) -> None:
        container = self._container()
        for name in names:  # one by one: the batch API is not in every service (Azurite's answers 400)
            with contextlib.suppress(ResourceNotFoundError):
                await call(self.config, container.delete_blob(self.blob_name(name)), self.seconds)

    async def _put(self, name: str, data: bytes) -> None:
        blob = self._container().get_blob_client(self.blob_name(name))
        await call(self.config, blob.upload_blob(data, overwrite=True), self.seconds)

    def _address(self, name: str) -> str:
        return self.blob_name(name)

    async def _close(self) -> None:
        client, self._service = self._service, None
        if client is not None:
            await client.close()


def blob_prefix(config: AzureBlobConfig, table: str, start: datetime, end: datetime) -> str:
    """The config's prefix templated for the interval, as the S3 destination templates its own."""
    template = S3Config.model_construct(
        bucket_name="-", aws_access_key_id="-", aws_secret_access_key="-", prefix=config.prefix
    )
    return object_prefix(template, table, start, end)


def _writer(config: AzureBlobConfig, request: WriteRequest) -> AzureBlobWriter:
    return AzureBlobWriter(config, request.model, IntervalFiles.of(config, request), request.context)


async def _container_reachable(config: AzureBlobConfig, context: Context) -> None:
    try:
        async with service(config, context.limits, context.allow_private, retries=1) as client:
            container = client.get_container_client(config.container_name)
            await call(config, container.get_container_properties(), context.limits.call_seconds)
    except AzureError as error:
        raise DestinationUserError(f"cannot reach Azure Blob Storage: {str(error).splitlines()[0]}") from error


async def _writable(config: AzureBlobConfig, context: Context) -> None:
    name = f"{config.prefix.split('{')[0].strip('/')}/.batch-exports-check-{uuid.uuid4().hex}".lstrip("/")
    try:
        async with service(config, context.limits, context.allow_private, retries=1) as client:
            container = client.get_container_client(config.container_name)
            upload = _Blob(container, config, name, context.limits.call_seconds)
            await upload.append(b"")
            await upload.complete()
            await call(config, container.delete_blob(name), context.limits.call_seconds)
    except AzureError as error:
        raise DestinationUserError(f"cannot write to Azure Blob Storage: {str(error).splitlines()[0]}") from error


DESTINATION = Destination(
    type="AzureBlob",
    config=AzureBlobConfig,
    open_writer=lambda config, request: _writer(config, request),
    steps=(
        Step("Reach the container", "Read the container's properties with the credentials given.",
             _container_reachable),
        Step("Write to the container", "Commit (then delete) an empty blob under the prefix.", _writable),
    ),
)  # fmt: skip
