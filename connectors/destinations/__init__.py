"""Destinations: where a run writes its interval. One module per destination, each with one descriptor
(`base.Destination`: its config, its writer, its checks, the models it takes), registered in `DESTINATIONS`.

Destinations live by family, each family with the skeleton its members share: `object_stores/` (numbered files
and a manifest: S3, Azure, File), `tables/` (one table commit per interval: Iceberg, Delta), `warehouses/`
(stage then apply: Postgres, Redshift, Snowflake, BigQuery), and `http`, `noop` on their own. `network/` is the way out
every client takes.
Adding a destination is one new module in its family plus one line in that list.
"""

import asyncio
import logging
from dataclasses import replace
from typing import Any

from connectors.destinations import http, noop
from connectors.destinations.base import (
    Context,
    Destination,
    DestinationConfig,
    DestinationUserError,
    IntervalWriter,
    WriteRequest,
)
from connectors.destinations.network.hosts import ensure_allowed_host
from connectors.destinations.object_stores import azure_blob, file, s3
from connectors.destinations.tables import delta_lake, iceberg
from connectors.destinations.warehouses import bigquery, postgres, redshift, snowflake

DESTINATIONS: tuple[Destination[Any], ...] = (
    file.DESTINATION,
    postgres.DESTINATION,
    http.DESTINATION,
    *s3.DESTINATIONS,
    noop.DESTINATION,
    iceberg.DESTINATION,
    delta_lake.DESTINATION,
    azure_blob.DESTINATION,
    redshift.DESTINATION,
    snowflake.DESTINATION,
    bigquery.DESTINATION,
)
logger = logging.getLogger(__name__)
_BY_TYPE = {destination.type: destination for destination in DESTINATIONS}
TYPES = tuple(_BY_TYPE)
"""Every destination type, in the order the API lists them."""


def destination(type_name: str) -> Destination[Any]:
    """The destination of `type_name`; KeyError for a type that is not one."""
    return _BY_TYPE[type_name]


def parse_config(type_name: str, config: dict[str, Any]) -> DestinationConfig:
    """Validate `config` for the destination type; raises pydantic's ValidationError."""
    return destination(type_name).config.model_validate(config)


def open_writer(type_name: str, config: DestinationConfig, request: WriteRequest) -> IntervalWriter:
    return destination(type_name).open_writer(config, request)


CHECK_ANSWER_CHARACTERS = 500
"""The most of a check's answer shown: what a destination said is quoted, never relayed whole."""


async def run_step(type_name: str, config: DestinationConfig, context: Context, index: int) -> str | None:
    """Run check `index` of the destination within the check's deadline; None when it passes, else what went
    wrong (no secret in it, at most `CHECK_ANSWER_CHARACTERS`)."""
    seconds = context.limits.check_seconds
    context = replace(context, deadline=asyncio.get_running_loop().time() + seconds)
    try:
        async with asyncio.timeout_at(context.deadline):
            await ensure_allowed_host(config, context)
            await destination(type_name).steps[index].run(config, context)
    except DestinationUserError as error:
        return _shown(str(error), config, context)
    except TimeoutError:
        return check_timed_out(seconds)
    except Exception as error:  # what the check could not foresee is still the answer to the person asking
        logger.warning("destination check %s of %s failed: %s", index, type_name, _shown(repr(error), config, context))
        return _shown(f"The check failed with an unexpected error: {type(error).__name__}: {error}", config, context)
    return None


def check_timed_out(seconds: float) -> str:
    """What a check that ran past its deadline answers (its runner's or its own, the same setting)."""
    return (
        f"The check did not finish within {seconds:g} s (BATCH_EXPORTS_CHECK_TIMEOUT_SECONDS): "
        "the destination did not answer in time."
    )


def _shown(message: str, config: DestinationConfig, context: Context) -> str:
    """`message` without secrets (the config's, the egress proxy's), at most `CHECK_ANSWER_CHARACTERS`."""
    message = config.redact(context.egress.redact(message) if context.egress else message)
    return message if len(message) <= CHECK_ANSWER_CHARACTERS else message[: CHECK_ANSWER_CHARACTERS - 1] + "…"


__all__ = [
    "DESTINATIONS",
    "TYPES",
    "Context",
    "Destination",
    "DestinationConfig",
    "DestinationUserError",
    "IntervalWriter",
    "WriteRequest",
    "check_timed_out",
    "destination",
    "ensure_allowed_host",
    "open_writer",
    "parse_config",
    "run_step",
]
