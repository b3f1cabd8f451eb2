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

import pyarrow.fs as pafs
from pydantic import Field, ValidationError, ValidationInfo, field_validator

from connectors.destinations.base import Context, DestinationConfig, DestinationUserError, Endpoint, Step
from connectors.destinations.network.endpoints import ParsedEndpoint, parse_endpoint
from connectors.destinations.network.proxy import Route, route_for
from connectors.destinations.object_stores.file import FileConfig, directory_parts
from connectors.destinations.object_stores.local_paths import refuse_links

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
        if value is not None and name == "endpoint_url":
            parse_endpoint(value, path=False)
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

    def parsed_endpoint(self) -> ParsedEndpoint | None:
        return parse_endpoint(self.endpoint_url, path=False) if self.endpoint_url else None

    def endpoint(self) -> Endpoint | None:
        parsed = self.parsed_endpoint()
        return Endpoint(parsed.host, "endpoint_url", parsed.port) if parsed else None


@dataclass(frozen=True)
class Location:
    """A resolved place: `uri` (`s3://bucket/prefix` or `file:///abs/dir`), and how to reach it."""

    config: TableLocationConfig
    uri: str
    directory: Path | None = None
    """For File storage: the directory `uri` names."""
    root: Path | None = None
    """For File storage: the project's directory of the file root, which `directory` lies in."""
    route: Route | None = None
    """For S3 storage: the way out through the egress proxy, which every client of the location takes."""

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

    def _route(self) -> Route:
        assert self.route is not None
        return self.route

    def filesystem(self) -> tuple[pafs.FileSystem, str]:
        """A pyarrow filesystem reaching the location (through the egress), and the location's path on it."""
        if not self.on_s3:
            assert self.directory is not None
            return pafs.LocalFileSystem(), str(self.directory)
        endpoint = self.config.parsed_endpoint()
        fs = pafs.S3FileSystem(
            access_key=self.config.aws_access_key_id,
            secret_key=self.config.aws_secret_access_key,
            region=self.config.region,
            scheme=endpoint.scheme if endpoint else "https",
            endpoint_override=endpoint.authority if endpoint else None,
            proxy_options=self._route().url,
            connect_timeout=10,
            request_timeout=self._route().limits.call_seconds,
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
                   "AWS_REGION": config.region, "proxy_url": self._route().url,
                   "timeout": f"{self._route().limits.call_seconds:g}s"}  # fmt: skip
        if endpoint := config.parsed_endpoint():
            options |= {"AWS_ENDPOINT_URL": endpoint.url, "AWS_FORCE_PATH_STYLE": "true"}
            if endpoint.scheme == "http":
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
            "s3.proxy-uri": self._route().url,
            "s3.request-timeout": f"{self._route().limits.call_seconds:g}",
        }
        if endpoint := config.parsed_endpoint():
            properties["s3.endpoint"] = endpoint.url
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
    uri = "/".join(["s3:/", config.bucket_name, *[p for p in config.prefix.split("/") if p]])
    return Location(config, uri, route=route_for(context))


def user_error(error: BaseException, location: Location, doing: str) -> DestinationUserError | None:
    """`error` as the user's to fix, when the storage's own words say so: its first line, and the S3 error
    code and message when the storage quotes the answer."""
    if location.route is not None and (why := location.route.refusal()):
        return DestinationUserError(f"cannot {doing} at {location.uri}: {why}")
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
