"""`S3`, `AwsS3`, `S3Compatible`: an interval's files as objects, each uploaded in parts.

Keys depend only on the export, the interval and the file's number (`{prefix}/{start}-{end}[-{n}].jsonl[.gz]`,
the prefix templated), and an object appears only when its upload completes, replacing any earlier copy
as a whole: a rerun leaves exactly one copy of each record. Numbered files, the size limit and the
manifest are `files.FileSeriesWriter`'s.

An attempt that dies leaves its multipart upload open (its parts cost storage). Every attempt, when it
commits or gives up, aborts the uploads still open under the interval's keys: only one attempt writes an
interval at a time, so any but its own are left over. (A bucket lifecycle rule,
`AbortIncompleteMultipartUpload`, catches the rest: see the README.)

The client connects only where the policy allows, to checked addresses, and follows no redirect (`egress`).
The prefix is a template of bare `{name}` fields only: no format spec, conversion, index or attribute, so
its expansion is never larger than the fields' own values.
"""

import asyncio
import contextlib
import functools
import logging
import string
import uuid
from datetime import UTC, datetime
from typing import Any, ClassVar, Literal, Self

from aiobotocore.session import AioSession, get_session
from botocore.exceptions import BotoCoreError, ClientError
from pydantic import Field, field_validator, model_validator

from connectors.destinations.base import Context, Destination, DestinationUserError, Endpoint, Step, WriteRequest
from connectors.destinations.network.egress import answer_too_large, s3_config
from connectors.destinations.network.endpoints import parse_endpoint
from connectors.destinations.object_stores.parts import PartedUpload
from connectors.destinations.object_stores.series import (
    FilesConfig,
    FileSeriesWriter,
    FileUpload,
    IntervalFiles,
    interval_stem,
)

logger = logging.getLogger(__name__)

PART_BYTES = 8 * 2**20
"""Every part but the last must be at least 5 MiB."""
PARTS_IN_FLIGHT = 4
SWEEP_SECONDS = 10
"""The longest an attempt spends aborting an upload (on its way out, maybe cancelled)."""
USER_ERROR_CODES = {
    "NoSuchBucket", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "AllAccessDisabled",
    "InvalidBucketName", "KMS.NotFoundException", "KMS.DisabledException", "InvalidArgument",
    "AuthorizationHeaderMalformed",
}  # fmt: skip


PREFIX_FIELDS = frozenset(
    {"year", "month", "day", "hour", "minute", "table", "data_interval_start", "data_interval_end"}
)


class S3Config(FilesConfig):
    """Objects in a bucket: an interval's files (see `FilesConfig`), each overwritten as a whole."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"aws_access_key_id", "aws_secret_access_key"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"endpoint_url", "kms_key_id"})
    """SigV4 sends the secret key nowhere: AWS itself (any bucket, any region) learns the key id and one
    request's signature only. A custom `endpoint_url` learns the same and could replay them, and is addressed
    path-style (the bucket never becomes part of its host name): it is a scope field, the bucket and region are
    not. `kms_key_id` decides whose key encrypts what is written (and who may read it back)."""

    bucket_name: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    region: str = Field("us-east-1", min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")
    prefix: str = Field("", max_length=500, description="May use {year} {month} {day} {hour} {minute} {table} "
                        "{data_interval_start} {data_interval_end}.")  # fmt: skip
    endpoint_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$")
    aws_access_key_id: str = Field(min_length=1, max_length=200)
    aws_secret_access_key: str = Field(min_length=1, max_length=200)
    encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = Field(None, max_length=2048)

    @field_validator("prefix")
    @classmethod
    def _bare_fields(cls, value: str) -> str:
        """Literal text and bare `{name}` fields of PREFIX_FIELDS (`{{`, `}}` for braces)."""
        try:
            parts = list(string.Formatter().parse(value))
        except ValueError as error:
            raise ValueError(f"the prefix template is malformed: {error}") from None
        for _, name, spec, conversion in parts:
            if name is None:
                continue
            if conversion is not None or spec:
                raise ValueError(
                    f"the prefix takes bare fields such as {{year}}: no conversion (!) or format (:) in "
                    f"{{{name[:40]}{'!' + conversion if conversion else ''}{':' + spec[:20] if spec else ''}}}"
                )
            if name not in PREFIX_FIELDS:  # also {}, {0}, {year[0]} and {year.attr}
                raise ValueError(f"unknown placeholder {{{name[:40]}}}; use {', '.join(sorted(PREFIX_FIELDS))}")
        return value

    @field_validator("endpoint_url")
    @classmethod
    def _one_reading(cls, value: str | None) -> str | None:
        if value is not None:
            parse_endpoint(value, path=False)
        return value

    @model_validator(mode="after")
    def _kms_needs_key(self) -> Self:
        if self.encryption == "aws:kms" and not self.kms_key_id:
            raise ValueError("encryption aws:kms needs kms_key_id")
        return self

    def endpoint(self) -> Endpoint | None:
        if self.endpoint_url is None:
            return None
        parsed = parse_endpoint(self.endpoint_url, path=False)
        return Endpoint(parsed.host, "endpoint_url", parsed.port)


class S3CompatibleConfig(S3Config):
    endpoint_url: str = Field(max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$")  # type: ignore[assignment]


def object_prefix(config: S3Config, table: str, start: datetime, end: datetime) -> str:
    """The config's prefix, templated for the interval, without slashes at either end."""
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    return config.prefix.format(
        year=f"{start:%Y}", month=f"{start:%m}", day=f"{start:%d}", hour=f"{start:%H}", minute=f"{start:%M}",
        table=table, data_interval_start=start.isoformat(), data_interval_end=end.isoformat(),
    ).strip("/")  # fmt: skip


def user_error(error: ClientError, config: S3Config) -> DestinationUserError | None:
    code = error.response.get("Error", {}).get("Code", "")
    if code in USER_ERROR_CODES:
        return DestinationUserError(
            f"S3 bucket {config.bucket_name}: {code}: {error.response['Error'].get('Message', '')}"
        )
    return None


def extra(config: S3Config) -> dict[str, str]:
    """The server-side encryption arguments of a write."""
    arguments: dict[str, str] = {}
    if config.encryption:
        arguments["ServerSideEncryption"] = config.encryption
    if config.kms_key_id:
        arguments["SSEKMSKeyId"] = config.kms_key_id
    return arguments


async def call(config: S3Config, request: Any) -> Any:
    """Await an S3 request, turning the errors only the user can fix into `DestinationUserError`."""
    try:
        return await request
    except ClientError as error:
        if problem := user_error(error, config):
            raise problem from error
        raise


async def put(s3: Any, config: S3Config, key: str, body: bytes) -> None:
    await call(config, s3.put_object(Bucket=config.bucket_name, Key=key, Body=body, **extra(config)))


@functools.cache
def _session() -> AioSession:
    """One botocore session for every client of the process: it keeps the S3 model and the endpoint rules it
    loaded. A session of its own for each client parsed those JSON files again for every export (with a
    garbage collection or two), a sixth of a small export's worker CPU. The session holds no credentials: each
    client is given its own."""
    return get_session()


def client(config: S3Config, context: Context) -> Any:
    return _session().create_client(
        "s3",
        region_name=config.region,
        endpoint_url=parse_endpoint(config.endpoint_url, path=False).url if config.endpoint_url else None,
        aws_access_key_id=config.aws_access_key_id,
        aws_secret_access_key=config.aws_secret_access_key,
        config=s3_config(context.allow_private, context.limits),
    )


class _S3Object(PartedUpload[dict[str, Any]]):
    """One object: a single PUT when small, else a multipart upload (`parts`). An abandoned upload leaves the
    previous object in place."""

    def __init__(self, s3: Any, config: S3Config, key: str) -> None:
        super().__init__(PART_BYTES, PARTS_IN_FLIGHT)
        self.s3, self.config, self.key = s3, config, key
        self._upload_id: str | None = None

    async def _start_parts(self) -> None:
        started = await call(
            self.config,
            self.s3.create_multipart_upload(Bucket=self.config.bucket_name, Key=self.key, **extra(self.config)),
        )
        self._upload_id = started["UploadId"]

    async def _send_part(self, index: int, body: bytes) -> dict[str, Any]:
        number = index + 1
        part = await call(
            self.config,
            self.s3.upload_part(
                Bucket=self.config.bucket_name, Key=self.key, PartNumber=number, UploadId=self._upload_id, Body=body
            ),
        )
        return {"PartNumber": number, "ETag": part["ETag"]}

    async def _complete_parts(self, parts: list[dict[str, Any]]) -> None:
        await call(
            self.config,
            self.s3.complete_multipart_upload(
                Bucket=self.config.bucket_name, Key=self.key, UploadId=self._upload_id, MultipartUpload={"Parts": parts}
            ),
        )
        self._upload_id = None

    async def _send_whole(self, body: bytes) -> None:
        await put(self.s3, self.config, self.key, body)

    async def _abandon_parts(self) -> None:
        if self._upload_id is not None:
            # On failure the next attempt (or the bucket's lifecycle rule) cleans the parts; the object is untouched.
            with contextlib.suppress(ClientError, BotoCoreError, TimeoutError):
                await asyncio.wait_for(
                    self.s3.abort_multipart_upload(
                        Bucket=self.config.bucket_name, Key=self.key, UploadId=self._upload_id
                    ),
                    SWEEP_SECONDS,
                )


class S3Writer(FileSeriesWriter):
    def __init__(self, config: S3Config, table: str, files: IntervalFiles, context: Context) -> None:
        super().__init__(files)
        self.config = config
        self.context = context
        self.directory = object_prefix(config, table, files.start, files.end)
        self._client_context: Any = None
        self._client: Any = None

    def key(self, name: str) -> str:
        return f"{self.directory}/{name}" if self.directory else name

    async def _s3(self) -> Any:
        if self._client is None:
            self._client_context = client(self.config, self.context)
            self._client = await self._client_context.__aenter__()
        return self._client

    async def _open(self, name: str) -> FileUpload:
        return _S3Object(await self._s3(), self.config, self.key(name))

    async def _exists(self, name: str) -> bool:
        s3 = await self._s3()
        try:
            await s3.head_object(Bucket=self.config.bucket_name, Key=self.key(name))
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code")
            if code in ("404", "NoSuchKey", "NotFound"):
                return False
            if code in ("403", "AccessDenied"):
                # Write-only credentials (s3:PutObject and no more) may not look: the export still lands,
                # but files an earlier attempt left beyond this one's last cannot be found, so they stay.
                logger.warning(
                    "cannot look for %s in bucket %s (%s): extra files are left", name, self.config.bucket_name, code
                )
                return False
            raise
        return True

    async def _remove(self, names: list[str]) -> None:
        s3 = await self._s3()
        for start in range(0, len(names), 1000):
            objects = [{"Key": self.key(name)} for name in names[start : start + 1000]]
            await call(self.config, s3.delete_objects(Bucket=self.config.bucket_name, Delete={"Objects": objects}))

    async def _put(self, name: str, data: bytes) -> None:
        await put(await self._s3(), self.config, self.key(name), data)

    def _address(self, name: str) -> str:
        return self.key(name)

    async def _close(self) -> None:
        try:
            await asyncio.wait_for(self._abort_left_over_uploads(), SWEEP_SECONDS)
        except (ClientError, BotoCoreError, TimeoutError) as error:  # the lifecycle rule will
            logger.warning("could not abort uploads left over in bucket %s: %s", self.config.bucket_name, error)
        finally:
            context, self._client_context, self._client = self._client_context, None, None
            if context is not None:
                await context.__aexit__(None, None, None)

    async def _abort_left_over_uploads(self) -> None:
        """Abort the multipart uploads open under the interval's keys (this writer's own are done by now)."""
        s3 = await self._s3()
        arguments = {"Bucket": self.config.bucket_name, "Prefix": self.key(interval_stem(self.start, self.end))}
        while True:
            try:
                listed = await s3.list_multipart_uploads(**arguments)
            except ClientError as error:
                if error.response.get("Error", {}).get("Code") in ("403", "AccessDenied"):
                    return  # write-only credentials may not look: the lifecycle rule cleans up
                raise
            for upload in listed.get("Uploads", []):
                logger.info(
                    "aborting upload %s of %s, left over by an earlier attempt", upload["UploadId"], upload["Key"]
                )
                await s3.abort_multipart_upload(
                    Bucket=self.config.bucket_name, Key=upload["Key"], UploadId=upload["UploadId"]
                )
            if not listed.get("IsTruncated"):
                return
            arguments |= {"KeyMarker": listed["NextKeyMarker"], "UploadIdMarker": listed["NextUploadIdMarker"]}


async def _writable(config: S3Config, context: Context) -> None:
    key = f"{config.prefix.split('{')[0].strip('/')}/.batch-exports-check-{uuid.uuid4().hex}".lstrip("/")
    try:
        async with client(config, context) as s3:
            await s3.put_object(Bucket=config.bucket_name, Key=key, Body=b"")
            await s3.delete_object(Bucket=config.bucket_name, Key=key)
    except ClientError as error:
        raise user_error(error, config) or DestinationUserError(str(error)) from error
    except BotoCoreError as error:
        raise DestinationUserError(f"cannot reach S3: {answer_too_large(error) or error}") from error


def _writer(config: S3Config, request: WriteRequest) -> S3Writer:
    return S3Writer(config, request.model, IntervalFiles.of(config, request), request.context)


_STEPS = (Step("Write to the bucket", "Put (then delete) an empty object under the prefix.", _writable),)
DESTINATIONS = (
    Destination(type="S3", config=S3Config, open_writer=_writer, steps=_STEPS),
    Destination(type="AwsS3", config=S3Config, open_writer=_writer, steps=_STEPS),
    Destination(type="S3Compatible", config=S3CompatibleConfig, open_writer=_writer, steps=_STEPS),
)
"""PostHog's three names: `S3` and `AwsS3` for AWS itself, `S3Compatible` for any server that speaks its API."""
