"""Integration kinds: a credential kept once in the project and named by exports (`integration_id`).

A kind holds, for the destinations it serves, the fields that say where the secrets go (`config`, readable)
and the secrets themselves (`sensitive_config`, write-only). An export naming an integration gives neither:
they come from the integration each time the export's config is read, so rotating a secret reaches every
export at its next run. Each field keeps the rules of the destination config it fills (types, bounds,
patterns).
"""

from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, create_model

from connectors.destinations.base import DestinationConfig
from connectors.destinations.http import HttpConfig
from connectors.destinations.object_stores.azure_blob import AzureBlobConfig
from connectors.destinations.object_stores.s3 import S3Config
from connectors.destinations.warehouses.postgres import PostgresConfig


@dataclass(frozen=True)
class IntegrationKind:
    name: str
    description: str
    destinations: tuple[str, ...]
    """The destination types whose configs it fills."""
    config_fields: tuple[str, ...]
    secret_fields: tuple[str, ...]
    config_model: type[BaseModel]
    secrets_model: type[BaseModel]

    @property
    def fields(self) -> frozenset[str]:
        return frozenset(self.config_fields) | frozenset(self.secret_fields)


def _model(name: str, source: type[DestinationConfig], fields: tuple[str, ...]) -> type[BaseModel]:
    """A model of `fields` as `source` declares them (required where the destination requires them)."""
    declared: dict[str, Any] = {field: (source.model_fields[field].annotation, source.model_fields[field])
                                for field in fields}  # fmt: skip
    return create_model(name, __config__=ConfigDict(extra="forbid", populate_by_name=True), **declared)


def _kind(
    name: str, description: str, source: type[DestinationConfig], destinations: tuple[str, ...],
    config: tuple[str, ...], secrets: tuple[str, ...],
) -> IntegrationKind:  # fmt: skip
    assert frozenset(secrets) == source.secret_fields, name  # every secret of the destination, and only those
    title = name.title().replace("-", "")
    models = _model(f"{title}Config", source, config), _model(f"{title}Secrets", source, secrets)
    return IntegrationKind(name, description, destinations, config, secrets, *models)


KINDS: dict[str, IntegrationKind] = {
    kind.name: kind
    for kind in (
        _kind("postgresql", "A PostgreSQL server and a user of it (and how TLS is checked on the way).",
              PostgresConfig, ("Postgres",), ("host", "port", "database", "has_self_signed_cert"),
              ("user", "password")),
        _kind("aws", "AWS access keys (and, for S3-compatible storage, its endpoint).", S3Config,
              ("S3", "AwsS3", "S3Compatible", "Iceberg", "DeltaLake"),
              ("endpoint_url",), ("aws_access_key_id", "aws_secret_access_key")),
        _kind("azure-blob", "An Azure Storage account: a connection string, or an account and its key.",
              AzureBlobConfig, ("AzureBlob",), ("account_name", "endpoint_url"), ("connection_string", "account_key")),
        _kind("http", "An HTTP endpoint and its token.", HttpConfig, ("HTTP",), ("url",), ("token",)),
    )
}  # fmt: skip


def kind_for(destination_type: str) -> IntegrationKind | None:
    """The kind of integration a destination type can name, if any."""
    return next((kind for kind in KINDS.values() if destination_type in kind.destinations), None)


def own_config(destination_type: str, config: DestinationConfig) -> dict[str, Any]:
    """The config as stored for an export: all of it, or, when it names an integration, all but what the
    integration fills (so that the integration's values are the ones read at every run)."""
    stored = config.stored()
    kind = kind_for(destination_type) if config.integration_id else None
    return {k: v for k, v in stored.items() if kind is None or k not in kind.fields}
