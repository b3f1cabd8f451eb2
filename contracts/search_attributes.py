"""The search attributes every run and backfill workflow carries, so operators can find them by export.

A cluster must register the custom ones (`SEARCH_ATTRIBUTES`); the dev stack does it at start.
"""

import json
from datetime import datetime
from typing import Any

from temporalio.common import SearchAttributeKey, SearchAttributePair, TypedSearchAttributes

BATCH_EXPORT_ID = SearchAttributeKey.for_keyword("BatchExportId")
TEAM_ID = SearchAttributeKey.for_int("TeamId")
DATA_INTERVAL_START = SearchAttributeKey.for_datetime("DataIntervalStart")
DATA_INTERVAL_END = SearchAttributeKey.for_datetime("DataIntervalEnd")
DESTINATION_TYPE = SearchAttributeKey.for_keyword("DestinationType")
BACKFILL_ID = SearchAttributeKey.for_keyword("BackfillId")
BATCH_EXPORT_NAME = SearchAttributeKey.for_keyword("BatchExportName")
"""On the export's schedule and every run and backfill: operators find them by name, and see it as a column."""
HANDED_OVER = "(hand-over: exports nothing itself)"
"""After the name of a fire between boundaries (a trigger), which only starts the interval's own run."""
SCHEDULED_START_TIME = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")
"""Temporal's own: the nominal time at which a schedule started the workflow."""

KEYWORD_BYTES = 2048
"""The largest keyword value Temporal takes (`limit.searchAttributeValueSize`), measured as its payload holds it:
JSON, with each character beyond ASCII escaped (an emoji is 12 bytes)."""


def keyword_bytes(value: str) -> int:
    """The size of `value` as a keyword search attribute's payload (what Temporal compares to KEYWORD_BYTES)."""
    return len(json.dumps(value).encode())


SEARCH_ATTRIBUTES = (
    BATCH_EXPORT_ID,
    TEAM_ID,
    DATA_INTERVAL_START,
    DATA_INTERVAL_END,
    DESTINATION_TYPE,
    BACKFILL_ID,
    BATCH_EXPORT_NAME,
)
"""The custom search attributes every run and backfill carries; a cluster must register them."""


def search_attributes(
    batch_export_id: str,
    team_id: int,
    destination_type: str,
    *,
    name: str | None = None,
    backfill_id: str | None = None,
    interval: tuple[datetime, datetime] | None = None,
) -> TypedSearchAttributes:
    """The search attributes of a run or backfill workflow."""
    pairs: list[SearchAttributePair[Any]] = [
        SearchAttributePair(BATCH_EXPORT_ID, batch_export_id),
        SearchAttributePair(TEAM_ID, team_id),
        SearchAttributePair(DESTINATION_TYPE, destination_type),
    ]
    if name:
        pairs.append(SearchAttributePair(BATCH_EXPORT_NAME, name))
    if backfill_id:
        pairs.append(SearchAttributePair(BACKFILL_ID, backfill_id))
    if interval:
        pairs += [
            SearchAttributePair(DATA_INTERVAL_START, interval[0]),
            SearchAttributePair(DATA_INTERVAL_END, interval[1]),
        ]
    return TypedSearchAttributes(pairs)
