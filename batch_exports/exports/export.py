"""The export's one shape: what a client sets on it (`ExportFields`, each field declared here once) and a saved
export (`BatchExport`: those fields and what the service keeps of it), with what follows from them.

A field of `ExportFields` is a column of the same name in `batch_exports` (the destination has a table of its
own), a property of the create body, and a field the API shows. `docs/adding-an-export-field.md` lists the files
a new one touches.
"""

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from connectors.destinations import DestinationConfig, destination
from connectors.destinations.integrations import own_config
from connectors.sources.events import EventSelection
from connectors.sources.filters import PropertyFilter
from connectors.sources.hogql import parse_query
from contracts.intervals import Interval, IntervalSpec


class ExportFields(BaseModel):
    """What a client sets on an export, in the order the create body lists them."""

    name: str = Field(min_length=1, max_length=400)
    model: Literal["events", "persons", "sessions"] = "events"
    destination: Any
    """Its type and config: as a body gives it (`validation.DestinationIn`), or as saved (`Destination`)."""
    interval: Interval
    paused: bool = False
    start_at: datetime | None = None
    end_at: datetime | None = None
    timezone: str = "UTC"
    offset_day: int | None = Field(None, ge=0, le=6)
    offset_hour: int | None = Field(None, ge=0, le=23)
    hogql_query: str | None = Field(
        None, description="SELECT <expressions> FROM events: picks and names the exported columns (events model)."
    )
    filters: list[PropertyFilter] | None = Field(None, description="Property filters, all of which must hold.")

    def plain_fields(self) -> dict[str, Any]:
        """The fields but the destination, as plain values: the export's own columns, and a body's base."""
        values = self.model_dump(include=set(ExportFields.model_fields) - {"destination", "filters"})
        filters = [f.model_dump(mode="json") for f in self.filters] if self.filters is not None else None
        return values | {"interval": self.interval.value, "filters": filters}


class Destination(BaseModel):
    """Where a saved export writes: its type and its whole config, secrets included (`config.public()` is what
    may be shown)."""

    type: str
    config: DestinationConfig


class BatchExport(ExportFields):
    """A saved export. The fields marked `exclude` are the service's bookkeeping: the API shows the others."""

    destination: Destination
    id: uuid.UUID
    team_id: int
    destination_id: uuid.UUID = Field(exclude=True)
    deleted: bool = Field(exclude=True)
    schema_: dict[str, Any] | None
    """The columns a hogql_query exports (None: the model's own)."""
    created_at: datetime
    last_updated_at: datetime
    last_paused_at: datetime | None
    covered_until: datetime | None = Field(None, exclude=True)
    """Every boundary up to here has a run, is being run, or was forgone while paused (see reconciliation)."""
    owed_from: datetime | None = Field(None, exclude=True)
    """The export owes every interval ending after this boundary a completed run (unless a pause forwent it)."""
    schedule_state: dict[str, Any] | None = Field(None, exclude=True)
    """What reconciliation last saw of the Temporal Schedule (fingerprints, actions), to notice changes."""

    @property
    def destination_type(self) -> str:
        return self.destination.type

    @property
    def destination_config(self) -> DestinationConfig:
        return self.destination.config

    @property
    def interval_spec(self) -> IntervalSpec:
        return IntervalSpec(self.interval, self.timezone, self.offset_day, self.offset_hour)

    def selection(self) -> EventSelection:
        """What of the events model the export selects (the other models take no selection)."""
        config = self.destination.config
        return EventSelection(
            include_events=tuple(config.include_events or ()),
            exclude_events=tuple(config.exclude_events or ()),
            filters=tuple(self.filters or ()),
            query=parse_query(self.hogql_query) if self.hogql_query else None,
            layout=destination(self.destination.type).event_layout,
        )

    def as_input(self) -> dict[str, Any]:
        """The export as a create body, with its full config (secrets included): the base a PATCH merges into."""
        config = own_config(self.destination.type, self.destination.config)
        return self.plain_fields() | {"destination": {"type": self.destination.type, "config": config}}
