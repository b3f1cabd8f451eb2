"""Where a table destination (Iceberg, Delta Lake) keeps its files: a bucket on the S3 API (`S3` for AWS,
`S3Compatible` for any server that speaks it), or a directory under the `File` destination's root, by the
same rules as `File` (a relative path, no `..`, resolved inside the root).

The S3 keys are write-only (`secret_fields`); a storage error only the user can fix (a missing bucket,
refused credentials, a path in the way) is a `DestinationUserError`, named by the provider's own code.
"""

import asyncio
import re
import uuid
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, ClassVar, Literal
from urllib.parse import urlparse

import pyarrow.fs as pafs
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from connectors.destinations.base import Context, DestinationConfig, DestinationUserError, Step
from connectors.destinations.file import FileConfig, directory_parts
from connectors.destinations.local_paths import refuse_links

USER_ERROR_WORDS = (
    "NoSuchBucket", "NO_SUCH_BUCKET", "AccessDenied", "ACCESS_DENIED", "InvalidAccessKeyId", "SignatureDoesNotMatch",
    "HTTP status 403", "403 Forbidden", "lacked the necessary privileges", "InvalidBucketName",
    "Permission denied", "Not a directory", "NotADirectoryError", "File exists",
)  # fmt: skip
"""Words of the storage's own messages (S3 codes as botocore, pyarrow and delta-rs spell them; local files)
that mean only the user can fix it."""


IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"
"""A table's (or namespace's) name: what every catalog and engine takes unquoted."""


class Storage(StrEnum):
    S3 = "S3"
    S3_COMPATIBLE = "S3Compatible"
    FILE = "File"


_ON_S3 = {Storage.S3, Storage.S3_COMPATIBLE}
_NEEDED_BY = {
    "path": {Storage.FILE},
    "bucket_name": _ON_S3,
    "aws_access_key_id": _ON_S3,
    "aws_secret_access_key": _ON_S3,
    "endpoint_url": {Storage.S3_COMPATIBLE},
}
_ONLY_FOR = {"path": {Storage.FILE}, "bucket_name": _ON_S3, "endpoint_url": _ON_S3, "aws_access_key_id": _ON_S3,
             "aws_secret_access_key": _ON_S3}  # fmt: skip


class TableLocationConfig(DestinationConfig):
    """A table's place: `storage` says which fields apply (`path` for File; the bucket's for S3); its name and
    partitioning."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"aws_access_key_id", "aws_secret_access_key"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"storage", "endpoint_url"})
    """Where the keys are sent: a change to one of these needs the keys again. As for `S3` (SigV4), the bucket
    and region are not: a custom endpoint is addressed path-style by both clients."""

    storage: Storage = Field(description="S3, S3Compatible (with endpoint_url) or File (under the File root).")
    path: str | None = Field(
        None, min_length=1, max_length=500, validate_default=True,
        description="File storage: the directory, relative to the workers' file-destination root.",
    )  # fmt: skip
    bucket_name: str | None = Field(
        None, min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$", validate_default=True
    )
    prefix: str = Field("", max_length=500, pattern=r"^[A-Za-z0-9_.=/-]*$", description="S3: the key prefix.")
    region: str = Field("us-east-1", min_length=1, max_length=40, pattern=r"^[a-z0-9-]+$")
    endpoint_url: str | None = Field(None, max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$",
                                     validate_default=True)  # fmt: skip
    aws_access_key_id: str | None = Field(None, min_length=1, max_length=200, validate_default=True)
    aws_secret_access_key: str | None = Field(None, min_length=1, max_length=200, validate_default=True)
    table_name: str = Field(pattern=IDENTIFIER, description="Created if missing, from the exported columns.")
    partitioning: Literal["day", "none"] = Field(
        "day", description="day: by day of the time column (`_inserted_at`); none: not partitioned."
    )

    @field_validator("path", "bucket_name", "endpoint_url", "aws_access_key_id", "aws_secret_access_key")
    @classmethod
    def _fits_storage(cls, value: str | None, info: ValidationInfo) -> str | None:
        storage = info.data.get("storage")
        if storage is None:  # the storage itself was refused: that is the error to show
            return value
        name = info.field_name or ""
        if value is None and storage in _NEEDED_BY[name]:
            raise ValueError(f"{name} is required with storage {storage}")
        if value is not None and storage not in _ONLY_FOR[name]:
            raise ValueError(f"{name} does not apply to storage {storage}")
        if value is not None and name == "path":
            try:
                FileConfig(path=value)  # the File destination's own rules
            except ValidationError as error:
                raise ValueError(error.errors()[0]["msg"].removeprefix("Value error, ")) from None
        return value

    @field_validator("prefix")
    @classmethod
    def _no_parent_segments(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("must not contain '..' segments")
        return value

    def remote_host(self) -> tuple[str, str] | None:
        return (urlparse(self.endpoint_url).hostname or "", "endpoint_url") if self.endpoint_url else None


@dataclass(frozen=True)
class Location:
    """A resolved place: `uri` (`s3://bucket/prefix` or `file:///abs/dir`), and how to reach it."""

    config: TableLocationConfig
    uri: str
    directory: Path | None = None
    """For File storage: the directory `uri` names."""
    root: Path | None = None
    """For File storage: the project's directory of the file root, which `directory` lies in."""

    def child(self, *names: str) -> str:
        return "/".join([self.uri.rstrip("/"), *names])

    def local_path(self, *names: str) -> str:
        """For File storage: the path of `names` under the directory (Delta Lake takes paths, not file:// URIs)."""
        assert self.directory is not None
        return str(self.directory.joinpath(*names))

    def refuse_links(self, *names: str) -> None:
        """For File storage: refuse the table at `names` below the location when its path, or anything inside it,
        is a symbolic link (the tables' libraries would follow it out of the project's directory). Blocking."""
        if self.directory is not None and self.root is not None:
            refuse_links(self.root, self.directory.joinpath(*names))

    @property
    def on_s3(self) -> bool:
        return self.config.storage in _ON_S3

    def s3_endpoint(self) -> tuple[str, str] | None:
        """(scheme, host[:port]) of a custom endpoint; None for AWS itself."""
        if not self.config.endpoint_url:
            return None
        url = urlparse(self.config.endpoint_url)
        return url.scheme, url.netloc

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem reaching the location, and the location's path on it."""
        if not self.on_s3:
            assert self.directory is not None
            return pafs.LocalFileSystem(), str(self.directory)
        endpoint = self.s3_endpoint()
        fs = pafs.S3FileSystem(
            access_key=self.config.aws_access_key_id,
            secret_key=self.config.aws_secret_access_key,
            region=self.config.region,
            scheme=endpoint[0] if endpoint else "https",
            endpoint_override=endpoint[1] if endpoint else None,
            connect_timeout=10,
            request_timeout=60,
            retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=3),
        )
        return fs, self.uri.removeprefix("s3://")

    def delta_storage_options(self) -> dict[str, str] | None:
        """delta-rs (object_store) options; None for local files."""
        if not self.on_s3:
            return None
        config = self.config
        assert config.aws_access_key_id is not None and config.aws_secret_access_key is not None
        options = {"AWS_ACCESS_KEY_ID": config.aws_access_key_id, "AWS_SECRET_ACCESS_KEY": config.aws_secret_access_key,
                   "AWS_REGION": config.region}  # fmt: skip
        if config.endpoint_url:
            options |= {"AWS_ENDPOINT_URL": config.endpoint_url, "AWS_FORCE_PATH_STYLE": "true"}
            if config.endpoint_url.startswith("http://"):
                options["AWS_ALLOW_HTTP"] = "true"
        return options

    def iceberg_properties(self) -> dict[str, str]:
        """pyiceberg FileIO properties (its pyarrow S3 filesystem); none for local files."""
        if not self.on_s3:
            return {}
        config = self.config
        assert config.aws_access_key_id is not None and config.aws_secret_access_key is not None
        properties = {
            "s3.access-key-id": config.aws_access_key_id,
            "s3.secret-access-key": config.aws_secret_access_key,
            "s3.region": config.region,
            "s3.force-virtual-addressing": "false",
        }
        if config.endpoint_url:
            properties["s3.endpoint"] = config.endpoint_url
        return properties


def locate(config: TableLocationConfig, context: Context) -> Location:
    """Where `config` says the table lives; a File path with a symbolic link among its components is the user's
    error (`local_paths`: the tables' libraries would follow it out of the project's directory)."""
    if config.storage is Storage.FILE:
        assert config.path is not None
        root = context.files_root
        directory = root.joinpath(*directory_parts(FileConfig(path=config.path)))
        refuse_links(root, directory, inside=False)
        return Location(config, directory.as_uri(), directory, root)
    assert config.bucket_name is not None
    return Location(config, "/".join(["s3:/", config.bucket_name, *[p for p in config.prefix.split("/") if p]]))


def user_error(error: BaseException, location: Location, doing: str) -> DestinationUserError | None:
    """`error` as the user's to fix, when the storage's own words say so: its first line, and the S3 error
    code and message when the storage quotes the answer."""
    text = str(error)
    if not any(word in text for word in USER_ERROR_WORDS):
        return None
    said = text.strip().splitlines()[0]
    if answer := re.search(r"<Code>([^<]{1,100})</Code>\s*(?:<Message>([^<]{0,300})</Message>)?", text):
        said += f" ({answer[1]}: {answer[2]})" if answer[2] else f" ({answer[1]})"
    return DestinationUserError(f"cannot {doing} at {location.uri}: {said}")


def _probe(location: Location) -> None:
    fs, base = location.filesystem()
    path = f"{base}/.batch-exports-check-{uuid.uuid4().hex}"
    if not location.on_s3:
        fs.create_dir(base, recursive=True)
    with fs.open_output_stream(path) as out:
        out.write(b"")
    fs.delete_file(path)


def check_writable(location: Location) -> None:
    """Write, then remove, an empty file at the location (blocking: call it from a thread)."""
    try:
        _probe(location)
    except (OSError, ValueError) as error:
        raise user_error(error, location, "write") or DestinationUserError(
            f"cannot write to {location.uri}: {error}"
        ) from error


async def _location_writable(config: TableLocationConfig, context: Context) -> None:
    await asyncio.to_thread(check_writable, locate(config, context))


LOCATION_WRITABLE: Step[Any] = Step(
    "Location writable", "Write (then remove) an empty file at the table's location.", _location_writable
)
"""The check both table destinations make of their location."""
