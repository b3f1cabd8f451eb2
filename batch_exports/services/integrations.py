"""Integrations: credentials a project keeps once, which its exports name instead of carrying them.

The security model of destination configs holds: `sensitive_config` is encrypted at rest and never returned;
an integration belongs to one project (another project's id is not found); a change to where its secrets go
(`config`) needs them all sent again; and an export names an integration only of the kind its destination
takes, without giving the fields the integration fills. A change to an integration is checked against every
live export that names it (its config still valid, its host one the address policy allows) before it is kept.
"""

import uuid
from typing import Any

import asyncpg
from pydantic import BaseModel, ValidationError

from batch_exports.crypto import ConfigCipher
from batch_exports.exports.validation import InvalidField
from batch_exports.runtime import Runtime
from batch_exports.store import integrations
from batch_exports.store.integrations import Integration
from connectors.destinations import parse_config
from connectors.destinations.integrations import KINDS, IntegrationKind, kind_for
from connectors.destinations.network import hosts

MAX_DISPLAY_NAME = 400


class InUse(Exception):
    """An integration that live exports name cannot be deleted."""

    def __init__(self, users: list[integrations.User]) -> None:
        super().__init__(f"{len(users)} batch export(s) use this integration")
        self.users = users


def _validated(model: type[BaseModel], value: Any, attr: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InvalidField(attr, f"{attr} must be an object.")
    try:
        return model.model_validate(value).model_dump(mode="json", by_alias=True, exclude_unset=True)
    except ValidationError as error:
        first = error.errors(include_url=False)[0]
        field = "__".join(str(part) for part in first["loc"])
        message = "This field is required." if first["type"] == "missing" else first["msg"]
        if first["type"] == "extra_forbidden":
            message = f"Unknown field '{field}' for this kind."
        raise InvalidField(f"{attr}__{field}" if field else attr, message) from None


def _display_name(value: Any, default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str) or not 0 < len(value) <= MAX_DISPLAY_NAME:
        raise InvalidField("display_name", f"display_name is a string of 1 to {MAX_DISPLAY_NAME} characters.")
    return value


def _kind(value: Any) -> IntegrationKind:
    if not isinstance(value, str) or value not in KINDS:
        raise InvalidField("kind", f"kind must be one of {', '.join(KINDS)}.")
    return KINDS[value]


async def create(rt: Runtime, team_id: int, body: Any) -> Integration:
    if not isinstance(body, dict):
        raise InvalidField("kind", "The body must be a JSON object with kind, config and sensitive_config.")
    kind = _kind(body.get("kind"))
    config = _validated(kind.config_model, body.get("config", {}), "config")
    sensitive = _validated(kind.secrets_model, body.get("sensitive_config", {}), "sensitive_config")
    name = _display_name(body.get("display_name"), kind.name)
    integration_id = await integrations.insert(
        rt.pool, team_id, kind.name, name, integrations.sealed(rt.cipher, config, sensitive)
    )
    created = await integrations.get(rt.pool, integration_id, team_id, rt.cipher)
    assert created is not None
    return created


async def update(rt: Runtime, integration: Integration, body: Any) -> Integration:
    """Merge `config` and `sensitive_config` over the stored ones (a secret set to null is removed). Changing
    where the secrets go needs every stored secret again; every live export that names it must still be valid."""
    if not isinstance(body, dict):
        raise InvalidField("config", "The body must be a JSON object.")
    kind = KINDS[integration.kind]
    if body.get("kind", kind.name) != kind.name:
        raise InvalidField("kind", "The kind of an integration cannot change: create another one.")
    posted_config, posted_secrets = body.get("config") or {}, body.get("sensitive_config") or {}
    for attr, posted in (("config", posted_config), ("sensitive_config", posted_secrets)):
        if not isinstance(posted, dict):
            raise InvalidField(attr, f"{attr} must be an object.")
    config = _validated(kind.config_model, {**integration.config, **posted_config}, "config")
    secrets = {k: v for k, v in {**integration.sensitive_config, **posted_secrets}.items() if v is not None}
    sensitive = _validated(kind.secrets_model, secrets, "sensitive_config")
    moved = sorted(f for f in kind.config_fields if config.get(f) != integration.config.get(f))
    missing = sorted(f for f in kind.secret_fields if integration.sensitive_config.get(f) and f not in posted_secrets)
    if moved and missing:
        raise InvalidField(
            f"sensitive_config__{missing[0]}",
            f"Changing {', '.join(repr(f) for f in moved)} changes where the stored secrets are sent: send "
            f"{', '.join(repr(f) for f in missing)} again in the same request.",
        )
    name = _display_name(body.get("display_name"), integration.display_name)
    async with rt.pool.acquire() as conn, conn.transaction():
        if await integrations.get(conn, integration.id, integration.team_id, rt.cipher, lock=True) is None:
            raise LookupError(integration.id)
        context = rt.destinations.for_project(integration.team_id)
        for user in await integrations.users(conn, integration.id):
            own = rt.cipher.decrypt(user.config_encrypted)
            why = f"The batch export '{user.name}' ({user.id}) would no longer be valid with this change"
            try:  # each export it serves must still be a valid destination, at an address the policy allows
                await hosts.ensure_allowed_host(parse_config(user.destination_type, {**own, **config, **sensitive}),
                                                context)  # fmt: skip
            except ValidationError as error:
                first = error.errors(include_url=False)[0]
                raise InvalidField(
                    "config", f"{why}: {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
                ) from None
            except hosts.HostRefused as refused:
                raise InvalidField(f"config__{refused.field}", f"{why}: {refused}") from None
            except OSError as error:
                raise InvalidField(f"config__{kind.config_fields[0]}", f"{why}: {error}") from None
        await integrations.update(conn, integration.id, name, integrations.sealed(rt.cipher, config, sensitive))
    updated = await integrations.get(rt.pool, integration.id, integration.team_id, rt.cipher)
    if updated is None:
        raise LookupError(integration.id)
    return updated


async def delete(rt: Runtime, integration: Integration) -> None:
    """Delete it, unless live exports name it (InUse lists them); deleted exports that named it keep reading it."""
    async with rt.pool.acquire() as conn, conn.transaction():
        if await integrations.get(conn, integration.id, integration.team_id, rt.cipher, lock=True) is None:
            return
        if users := await integrations.users(conn, integration.id):
            raise InUse(users)
        await integrations.soft_delete(conn, integration.id)


async def expand(
    conn: asyncpg.Pool | asyncpg.Connection,
    cipher: ConfigCipher,
    team_id: int,
    destination: Any,
    posted: Any = None,
) -> Any:
    """`destination` (`{type, config}`) with the fields of the integration its config names filled in, as the
    export will read them; as it was when it names none. `posted` is the config the client sent (for a PATCH,
    the part merged over the stored one): it may not give a field the integration fills."""
    if not isinstance(destination, dict) or not isinstance(destination.get("config"), dict):
        return destination
    config: dict[str, Any] = destination["config"]
    raw_id = config.get("integration_id")
    if raw_id is None:
        return destination
    attr = "destination__config__integration_id"
    try:
        integration_id = uuid.UUID(str(raw_id))
    except ValueError:
        raise InvalidField(attr, "integration_id is not a UUID.") from None
    kind = kind_for(str(destination.get("type")))
    if kind is None:
        raise InvalidField(attr, f"The {str(destination.get('type'))[:100]} destination takes no integration.")
    integration = await integrations.get(conn, integration_id, team_id, cipher)
    if integration is None:
        raise InvalidField(attr, "No integration of this project has this id.")
    if integration.kind != kind.name:
        raise InvalidField(
            attr, f"This destination takes a '{kind.name}' integration; this one is '{integration.kind}'."
        )
    given = posted if isinstance(posted, dict) else config
    if clash := sorted(f for f in kind.fields if given.get(f) is not None):
        raise InvalidField(
            f"destination__config__{clash[0]}",
            f"{', '.join(repr(f) for f in clash)} come(s) from the integration: change it there, or leave "
            "integration_id out to give them here.",
        )
    own = {k: v for k, v in config.items() if k not in kind.fields}
    return {**destination, "config": {**own, **integration.values, "integration_id": str(integration_id)}}
