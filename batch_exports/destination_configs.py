"""What each destination type accepts as config, validated when an export is saved.

Fields listed in a config's `secret_fields` are write-only: they are stored (encrypted, like the rest
of the config) but never returned by the API or written to a log.
"""

import string
from enum import StrEnum
from typing import Any, ClassVar, Literal, Self
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator


class DestinationType(StrEnum):
    FILE = "File"
    POSTGRES = "Postgres"
    HTTP = "HTTP"
    S3 = "S3"
    AWS_S3 = "AwsS3"
    S3_COMPATIBLE = "S3Compatible"
    NOOP = "NoOp"


class FileFormat(StrEnum):
    JSONLINES = "JSONLines"
    PARQUET = "Parquet"


class Compression(StrEnum):
    GZIP = "gzip"
    BROTLI = "brotli"
    ZSTD = "zstd"
    SNAPPY = "snappy"
    LZ4 = "lz4"


COMPRESSIONS = {
    FileFormat.JSONLINES: {Compression.GZIP, Compression.BROTLI, Compression.ZSTD},
    FileFormat.PARQUET: {Compression.ZSTD, Compression.SNAPPY, Compression.GZIP, Compression.LZ4, Compression.BROTLI},
}


def check_compression(file_format: FileFormat, compression: "Compression | None") -> None:
    if compression is not None and compression not in COMPRESSIONS[file_format]:
        allowed = ", ".join(sorted(c.value for c in COMPRESSIONS[file_format]))
        raise ValueError(f"{file_format.value} files take compression {allowed} (or none), not {compression.value}")


class DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset()

    include_events: list[str] | None = Field(None, description="Export only these events (events model).")
    exclude_events: list[str] | None = Field(None, description="Export all events but these (events model).")

    def public(self) -> dict[str, Any]:
        """The config as the API shows it: every field but the secret ones."""
        return self.model_dump(mode="json", exclude=set(self.secret_fields))

    def remote_host(self) -> tuple[str, str] | None:
        """The host this destination connects to, and the field naming it; None for local ones."""
        return None


class FilesConfig(DestinationConfig):
    """What destinations that write files (File, S3) share: the format, its compression, the size of a file."""

    file_format: FileFormat = FileFormat.JSONLINES
    compression: Compression | None = None
    max_file_size_mb: int | None = Field(
        None, ge=1, le=100_000, description="Split an interval into numbered files of about this size, with a manifest."
    )

    @model_validator(mode="after")
    def _compression_fits_format(self) -> Self:
        check_compression(self.file_format, self.compression)
        return self


class FileConfig(FilesConfig):
    path: str = Field(min_length=1, description="Directory, relative to the workers' file-destination root.")
    prefix: str = Field("", description="Sub-directory for this export's files.")

    @field_validator("path", "prefix")
    @classmethod
    def _no_parent_segments(cls, value: str) -> str:
        if ".." in value.split("/"):
            raise ValueError("must not contain '..' segments")
        if value.startswith("/"):
            raise ValueError("must be relative to the directory this service writes files under")
        return value


class NoOpConfig(DestinationConfig):
    pass


class HttpConfig(DestinationConfig):
    """PostHog's capture batch format, POSTed to `url` with `token` as the batch's api_key."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$")
    token: str = Field(min_length=1, max_length=1000)

    def remote_host(self) -> tuple[str, str] | None:
        return urlparse(self.url).hostname or "", "url"


PREFIX_FIELDS = frozenset(
    {"year", "month", "day", "hour", "minute", "table", "data_interval_start", "data_interval_end"}
)


class S3Config(FilesConfig):
    """Objects in a bucket: an interval's files (see `FilesConfig`), each overwritten as a whole."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"aws_access_key_id", "aws_secret_access_key"})

    bucket_name: str = Field(min_length=3, max_length=63, pattern=r"^[a-z0-9][a-z0-9.-]+[a-z0-9]$")
    region: str = Field("us-east-1", min_length=1, max_length=40)
    prefix: str = Field("", max_length=500, description="May use {year} {month} {day} {hour} {minute} {table} "
                        "{data_interval_start} {data_interval_end}.")  # fmt: skip
    endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s/$.?#][^\s]*$")
    aws_access_key_id: str = Field(min_length=1, max_length=200)
    aws_secret_access_key: str = Field(min_length=1, max_length=200)
    encryption: Literal["AES256", "aws:kms"] | None = None
    kms_key_id: str | None = Field(None, max_length=2048)

    @field_validator("prefix")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        try:
            names = {name for _, name, _, _ in string.Formatter().parse(value) if name is not None}
        except ValueError as error:
            raise ValueError(f"the prefix template is malformed: {error}") from None
        if unknown := sorted(names - PREFIX_FIELDS):
            raise ValueError(f"unknown placeholder {{{unknown[0]}}}; use {', '.join(sorted(PREFIX_FIELDS))}")
        return value

    @model_validator(mode="after")
    def _kms_needs_key(self) -> Self:
        if self.encryption == "aws:kms" and not self.kms_key_id:
            raise ValueError("encryption aws:kms needs kms_key_id")
        return self

    def remote_host(self) -> tuple[str, str] | None:
        return (urlparse(self.endpoint_url).hostname or "", "endpoint_url") if self.endpoint_url else None


class S3CompatibleConfig(S3Config):
    endpoint_url: str = Field(pattern=r"^https?://[^\s/$.?#][^\s]*$")  # type: ignore[assignment]


_IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]{0,62}$"


class PostgresConfig(DestinationConfig):
    secret_fields: ClassVar[frozenset[str]] = frozenset({"user", "password"})

    host: str = Field(min_length=1, max_length=255)
    port: int = Field(5432, ge=1, le=65535)
    database: str = Field(min_length=1, max_length=63)
    schema_name: str = Field("public", alias="schema", pattern=_IDENTIFIER)
    table_name: str = Field(pattern=_IDENTIFIER, description="Created if missing.")
    user: str = Field(min_length=1, max_length=63)
    password: str = Field("", max_length=1000)
    has_self_signed_cert: bool = False

    def remote_host(self) -> tuple[str, str] | None:
        return self.host, "host"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    def public(self) -> dict[str, Any]:
        return self.model_dump(mode="json", by_alias=True, exclude=set(self.secret_fields))


CONFIG_TYPES: dict[DestinationType, type[DestinationConfig]] = {
    DestinationType.FILE: FileConfig,
    DestinationType.POSTGRES: PostgresConfig,
    DestinationType.HTTP: HttpConfig,
    DestinationType.S3: S3Config,
    DestinationType.AWS_S3: S3Config,
    DestinationType.S3_COMPATIBLE: S3CompatibleConfig,
    DestinationType.NOOP: NoOpConfig,
}


def parse_config(destination_type: DestinationType, config: dict[str, Any]) -> DestinationConfig:
    """Validate `config` for `destination_type`; raises pydantic's ValidationError."""
    return CONFIG_TYPES[destination_type].model_validate(config)


__all__ = [
    "CONFIG_TYPES",
    "Compression",
    "DestinationConfig",
    "DestinationType",
    "FileConfig",
    "FileFormat",
    "NoOpConfig",
    "ValidationError",
    "parse_config",
]
