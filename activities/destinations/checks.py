"""Checks a person can run against a destination before trusting it with an export (the test routes).

Each destination lists its steps; a step passes, or fails with a message saying what to fix.
"""

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from botocore.exceptions import BotoCoreError, ClientError

from activities.destinations import DestinationUserError, ensure_allowed_host, postgres, s3
from activities.destinations.file import resolve_directory
from activities.destinations.http import DestinationUnavailable, HttpWriter
from batch_exports.destination_configs import (
    DestinationConfig,
    DestinationType,
    FileConfig,
    HttpConfig,
    PostgresConfig,
    S3Config,
)
from batch_exports.settings import Settings


@dataclass(frozen=True)
class Step:
    name: str
    description: str
    run: Callable[[DestinationConfig, Settings], Awaitable[None]]


def _write_probe(config: FileConfig, settings: Settings) -> None:
    directory = resolve_directory(config, settings.exports_root)
    probe = directory / f".batch-exports-check-{uuid.uuid4().hex}"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise DestinationUserError(f"cannot write to {directory}: {error.strerror}") from error


async def _file_writable(config: DestinationConfig, settings: Settings) -> None:
    assert isinstance(config, FileConfig)
    await asyncio.to_thread(_write_probe, config, settings)


async def _nothing(config: DestinationConfig, settings: Settings) -> None:
    return None


async def _http_answers(config: DestinationConfig, settings: Settings) -> None:
    assert isinstance(config, HttpConfig)
    writer = HttpWriter(config, "events")
    try:
        await writer.send([])
    except DestinationUnavailable as error:
        raise DestinationUserError(str(error)) from error
    finally:
        await writer.abort()


async def _s3_writable(config: DestinationConfig, settings: Settings) -> None:
    assert isinstance(config, S3Config)
    key = f"{config.prefix.split('{')[0].strip('/')}/.batch-exports-check-{uuid.uuid4().hex}".lstrip("/")
    try:
        async with s3.client(config) as client:
            await client.put_object(Bucket=config.bucket_name, Key=key, Body=b"")
            await client.delete_object(Bucket=config.bucket_name, Key=key)
    except ClientError as error:
        raise s3.user_error(error, config) or DestinationUserError(str(error)) from error
    except BotoCoreError as error:
        raise DestinationUserError(f"cannot reach S3: {error}") from error


async def _postgres_connects(config: DestinationConfig, settings: Settings) -> None:
    assert isinstance(config, PostgresConfig)
    conn = await postgres.connect(config)
    await conn.close()


async def _postgres_table_writable(config: DestinationConfig, settings: Settings) -> None:
    assert isinstance(config, PostgresConfig)
    conn = await postgres.connect(config)
    try:
        exists = await conn.fetchval("SELECT to_regclass($1)", f"{config.schema_name}.{config.table_name}")
        if exists:
            allowed = await conn.fetchval("SELECT has_table_privilege($1, 'INSERT, DELETE')", exists)
        else:
            allowed = await conn.fetchval("SELECT has_schema_privilege($1, 'CREATE')", config.schema_name)
        if not allowed:
            what = "insert into and delete from the table" if exists else "create the table in the schema"
            raise DestinationUserError(f"user {config.user} may not {what} {config.schema_name}.{config.table_name}")
    except postgres.USER_ERRORS as error:
        raise DestinationUserError(str(error)) from error
    finally:
        await conn.close()


STEPS: dict[DestinationType, list[Step]] = {
    DestinationType.FILE: [
        Step("Write to the directory", "Create the directory if needed and write (then remove) a file in it.",
             _file_writable),
    ],
    DestinationType.POSTGRES: [
        Step("Connect", "Connect to the database with the credentials given.", _postgres_connects),
        Step("Table is writable", "The table can be created, or written and rewritten.", _postgres_table_writable),
    ],
    DestinationType.HTTP: [
        Step("Send an empty batch", "POST an empty capture batch: the URL and the token answer.", _http_answers),
    ],
    **{
        kind: [Step("Write to the bucket", "Put (then delete) an empty object under the prefix.", _s3_writable)]
        for kind in (DestinationType.S3, DestinationType.AWS_S3, DestinationType.S3_COMPATIBLE)
    },
    DestinationType.NOOP: [Step("Nothing to check", "The NoOp destination writes nothing.", _nothing)],
}  # fmt: skip


async def run_step(
    destination_type: DestinationType, config: DestinationConfig, settings: Settings, index: int
) -> str | None:
    """Run step `index`; None when it passes, else what went wrong."""
    try:
        await ensure_allowed_host(config, settings.allow_private_destinations)
        await STEPS[destination_type][index].run(config, settings)
    except DestinationUserError as error:
        return str(error)
    return None
