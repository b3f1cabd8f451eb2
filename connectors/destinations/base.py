"""What every destination is made of: a config, a writer of one interval, checks, and the descriptor naming them.

A destination writes an interval so that writing it again leaves exactly one copy of each record:
`commit` makes the whole interval visible at once, replacing what an earlier attempt wrote; `abort`
leaves the destination as it was.

Fields listed in a config's `secret_fields` are write-only: they are stored (encrypted, like the rest
of the config) but never returned by the API, and their values are redacted from every message that leaves
a destination (`redact`). A secret stays with the place it was given for: `secret_scope_fields` are the
fields that say where the secrets go, and a change to one of them needs the secrets sent again.
"""

import builtins
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar
from urllib.parse import urlparse

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from connectors.destinations.redaction import redact
from connectors.sources import MODELS


class DestinationUserError(Exception):
    """An error only the user can fix (bad credentials, missing bucket, no permission): never retried."""


@dataclass(frozen=True)
class Endpoint:
    """Where a destination connects: its host (and the config field naming it), its port and, for a database,
    the database's name."""

    host: str
    field: str
    port: int = 0
    database: str | None = None

    @classmethod
    def of_url(cls, url: str, field: str) -> "Endpoint":
        parsed = urlparse(url)
        try:
            port = parsed.port or (443 if parsed.scheme == "https" else 80)
        except ValueError:
            port = 0
        return cls(parsed.hostname or "", field, port)


class DestinationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    secret_fields: ClassVar[frozenset[str]] = frozenset()
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset()
    """The fields that say where the secrets are sent (host, url, bucket, ...): changing one without sending
    the secrets again is refused, so a stored secret never follows a new address it was not given for."""

    integration_id: uuid.UUID | None = Field(
        None, description="An integration of the project that holds this destination's credentials (and where they "
        "go): its fields are then not given here."
    )  # fmt: skip
    include_events: list[str] | None = Field(None, description="Export only these events (events model).")
    exclude_events: list[str] | None = Field(None, description="Export all events but these (events model).")

    def public(self) -> dict[str, Any]:
        """The config as the API shows it: every field but the secret ones."""
        return self.model_dump(mode="json", by_alias=True, exclude=set(self.secret_fields))

    def stored(self) -> dict[str, Any]:
        """The whole config, secrets included, as it is stored (encrypted)."""
        return self.model_dump(mode="json", by_alias=True)

    def remote_host(self) -> tuple[str, str] | None:
        """The host this destination connects to, and the field naming it; None for local ones."""
        return None

    def endpoint(self) -> Endpoint | None:
        """Where this destination connects (host, port, database), checked before anything connects."""
        remote = self.remote_host()
        return Endpoint(remote[0], remote[1]) if remote else None

    def secret_values(self) -> list[str]:
        """The values of the secret fields that are set, longest first."""
        values = {str(getattr(self, name)) for name in self.secret_fields if getattr(self, name, None)}
        return sorted(values, key=len, reverse=True)

    def redact(self, message: str) -> str:
        """`message` with every secret value of this config replaced by `[redacted]`."""
        return redact(message, self.secret_values())


@dataclass(frozen=True)
class ProtectedDatabase:
    """A database of this service (its metadata, its event source): never a destination."""

    host: str
    port: int
    database: str


@dataclass(frozen=True)
class ClientLimits:
    """Bounds on every destination client (settings `BATCH_EXPORTS_DESTINATION_*`)."""

    call_seconds: float = 120.0
    """The longest one call to a destination may take, its answer read (retries within it included)."""
    check_seconds: float = 60.0
    """The longest one destination check may take."""
    answer_bytes: int = 64 * 2**20
    """The most of one answer a client reads into memory (a ranged read: the range asked for)."""


class Egress(Protocol):
    """The process's forward proxy (`network.proxy.EgressProxy`), as what every destination shares sees it: a
    holder of secrets (its routes' credentials) that a message must not show."""

    def redact(self, message: str) -> str: ...


@dataclass(frozen=True)
class Context:
    """What the service tells a destination about where it runs."""

    files_root: Path
    """The directory `File` destinations write under: the project's own (see `for_project`)."""
    allow_private: bool
    """Whether a destination may reach loopback, private and other non-internet addresses."""
    protected_databases: tuple[ProtectedDatabase, ...] = ()
    """The service's own databases, which no destination may point at."""
    limits: ClientLimits = ClientLimits()
    egress: Egress | None = None
    """The process's forward proxy, through which clients in native code connect (`proxy`)."""
    deadline: float | None = None
    """When the work this context is for must end (the event loop's clock): a check's deadline."""
    project_id: int | None = None
    """The project whose destinations these are (see `for_project`)."""
    destination_settings: Mapping[str, str] = field(default_factory=dict)
    """What the operator set for particular destinations (the Iceberg catalog, a warehouse's endpoint), by the
    name of its `Settings` field: a destination reads its own (`setting`); this context names none of them."""

    def setting(self, name: str) -> str:
        """The destination setting `name`; a RuntimeError (the service's to fix, not the user's) when unset."""
        try:
            return self.destination_settings[name]
        except KeyError:
            raise RuntimeError(f"the service gave destinations no setting {name}") from None

    def for_project(self, team_id: int) -> "Context":
        """The context of one project's destinations: files under the project's own directory of the root."""
        return replace(self, files_root=self.files_root / str(team_id), project_id=team_id)


@dataclass(frozen=True)
class WriteRequest:
    """What a writer writes, beside its config: one interval of one model."""

    context: Context
    model: str
    custom_columns: bool
    """A hogql_query chose the columns (so they are not the model's own)."""
    start: datetime
    end: datetime
    first_file: int = 0
    """Destinations that write files number them from here (a continued-as-new chain numbers on)."""
    batch_export_id: str = ""
    run_id: str = ""
    """The run (one execution: an interval, or a segment of one): a table destination marks its commit with it."""
    attempt: int = 0
    """The attempt of the run (Temporal's, from 1): what a destination's scratch of this attempt is named by."""


class IntervalWriter(ABC):
    bytes_written: int = 0
    files: int = 0
    """How many files this writer completed (destinations that write files)."""
    batch_bytes: int = 0
    """The size of batch (Arrow bytes) this writer wants, if it has a wish: one that splits files ends them
    between batches, so batches of a fraction of a file let each file end near the size limit."""
    batch_rows: int = 0
    """The most rows a batch may hold, if the writer has a wish: one that makes each batch durable on its own
    (a POST) wants batches that size, so that a retried attempt resumes after the last one that was taken."""

    @abstractmethod
    async def write(self, batch: pa.RecordBatch) -> bool:
        """Write a batch; True when everything written so far is in the destination for good, so a
        retried attempt may resume after it."""

    @abstractmethod
    async def commit(self, final: bool = True) -> None:
        """Make what was written visible; `final` when no continued execution follows in this interval."""

    @abstractmethod
    async def abort(self) -> None: ...


C = TypeVar("C", bound=DestinationConfig)


@dataclass(frozen=True)
class Step(Generic[C]):
    """A check a person can run before trusting the destination: it passes, or raises DestinationUserError."""

    name: str
    description: str
    run: Callable[[C, Context], Awaitable[None]]


@dataclass(frozen=True)
class Destination(Generic[C]):
    """One destination type: everything the service needs to know of it, in one place."""

    type: str
    """The name the API uses (`destination.type`)."""
    config: builtins.type[C]
    open_writer: Callable[[C, WriteRequest], IntervalWriter]
    steps: tuple[Step[C], ...]
    models: tuple[str, ...] = MODELS
    """The models it can export."""
    custom_columns: bool = True
    """Whether it takes a hogql_query's columns (a table destination may want the model's own)."""
    event_layout: str = "files"
    """Which of PostHog's event column sets it takes (`sources.events`): PostgreSQL has its own."""
