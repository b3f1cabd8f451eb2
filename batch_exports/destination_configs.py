"""What each destination type accepts as config, validated when an export is saved.

Fields listed in a config's `secret_fields` are write-only: they are stored (encrypted, like the rest
of the config) but never returned by the API or written to a log.
"""

from enum import StrEnum
from typing import Any, ClassVar
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator


class DestinationType(StrEnum):
    FILE = "File"
    POSTGRES = "Postgres"
    HTTP = "HTTP"
    NOOP = "NoOp"


class FileFormat(StrEnum):
    JSONLINES = "JSONLines"


class Compression(StrEnum):
    GZIP = "gzip"


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


class FileConfig(DestinationConfig):
    path: str = Field(min_length=1, description="Directory, relative to the workers' file-destination root.")
    prefix: str = Field("", description="Sub-directory for this export's files.")
    file_format: FileFormat = FileFormat.JSONLINES
    compression: Compression | None = None

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
