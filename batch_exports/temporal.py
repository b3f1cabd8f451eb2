"""The Temporal client, configured the way Temporal users expect, and the service's search attributes."""

import contextlib
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes
from temporalio.envconfig import ClientConfig
from temporalio.service import RPCError, RPCStatusCode

BATCH_EXPORT_ID = SearchAttributeKey.for_keyword("BatchExportId")
TEAM_ID = SearchAttributeKey.for_int("TeamId")
DATA_INTERVAL_START = SearchAttributeKey.for_datetime("DataIntervalStart")
DATA_INTERVAL_END = SearchAttributeKey.for_datetime("DataIntervalEnd")
DESTINATION_TYPE = SearchAttributeKey.for_keyword("DestinationType")
BACKFILL_ID = SearchAttributeKey.for_keyword("BackfillId")
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")

SEARCH_ATTRIBUTES = (BATCH_EXPORT_ID, TEAM_ID, DATA_INTERVAL_START, DATA_INTERVAL_END, DESTINATION_TYPE, BACKFILL_ID)
"""The custom search attributes every run and backfill carries; a cluster must register them."""


def search_attributes(
    batch_export_id: str,
    team_id: int,
    destination_type: str,
    *,
    backfill_id: str | None = None,
    interval: tuple[datetime, datetime] | None = None,
) -> TypedSearchAttributes:
    """The search attributes of a run or backfill workflow, so operators can find it by export."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(BATCH_EXPORT_ID, batch_export_id),
        SearchAttributePair(TEAM_ID, team_id),
        SearchAttributePair(DESTINATION_TYPE, destination_type),
    ]
    if backfill_id:
        pairs.append(SearchAttributePair(BACKFILL_ID, backfill_id))
    if interval:
        pairs += [
            SearchAttributePair(DATA_INTERVAL_START, interval[0]),
            SearchAttributePair(DATA_INTERVAL_END, interval[1]),
        ]
    return TypedSearchAttributes(pairs)


async def connect(*, lazy: bool = False) -> Client:
    """Connect with `TEMPORAL_ADDRESS`, `TEMPORAL_NAMESPACE`, `TEMPORAL_PROFILE`, ... (temporalio.envconfig).

    A lazy client connects on first use, so a gateway can start (and report) while Temporal is down.
    """
    config = ClientConfig.load_client_connect_config()
    config.setdefault("target_host", "localhost:7233")
    return await Client.connect(**config, lazy=lazy)


class TemporalUnavailable(Exception):
    """Temporal refused or could not be reached; the change it was part of has been undone."""


@contextlib.asynccontextmanager
async def calling_temporal(action: str) -> AsyncIterator[None]:
    """Turn a Temporal failure inside the block into `TemporalUnavailable`, saying what could not be done."""
    try:
        yield
    except (RPCError, RuntimeError) as error:
        message = f"Temporal could not {action}, so nothing was changed; try again ({error})"
        raise TemporalUnavailable(message) from error


def is_not_found(error: RPCError) -> bool:
    return error.status == RPCStatusCode.NOT_FOUND


async def cancel_workflow(client: Client, workflow_id: str, run_id: str | None = None) -> bool:
    """Request cancellation; False when the execution has already closed. Other failures: TemporalUnavailable."""
    try:
        async with calling_temporal("cancel the workflow"):
            await client.get_workflow_handle(workflow_id, run_id=run_id).cancel()
    except TemporalUnavailable as error:
        if isinstance(error.__cause__, RPCError) and is_not_found(error.__cause__):
            return False
        raise
    return True
