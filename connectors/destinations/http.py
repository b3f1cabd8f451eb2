"""`HTTP`: events in PostHog's capture batch format (`{"api_key", "batch"}`) POSTed to `url`.

Each event keeps its `uuid`, so a receiver that deduplicates by it (PostHog, and this service's own
capture endpoint) holds each record once however often the interval is sent. Each batch the writer gets
is one POST (it asks the source for batches of `BATCH_EVENTS`), and is in the destination for good once
answered: the export checkpoints after every POST, so a resumed attempt sends again at most the one POST
that was in flight. 429 and 5xx answers are retried with backoff; any other 4xx fails the run with the
answer in `latest_error`. A redirect is not followed (the token would go wherever it points): it fails the
run, naming where it pointed. Connections go only where the policy allows (`egress`), and at most
`ANSWER_BYTES` of an answer are read.
"""

import asyncio
import gzip
import json
from datetime import UTC, datetime
from typing import Any, ClassVar

import aiohttp
import pyarrow as pa
from pydantic import Field

from connectors.columns import python_rows
from connectors.destinations.base import (
    Context,
    Destination,
    DestinationConfig,
    DestinationUserError,
    Endpoint,
    IntervalWriter,
    Step,
)
from connectors.destinations.network.egress import http_session
from connectors.destinations.network.hosts import AddressRefused
from connectors.json_encoding import default

BATCH_EVENTS = 500
ATTEMPTS = 5
FIRST_BACKOFF_SECONDS = 0.5
ANSWER_BYTES = 300
"""How much of an answer's body is read (and shown in an error)."""


class HttpConfig(DestinationConfig):
    """PostHog's capture batch format, POSTed to `url` with `token` as the batch's api_key."""

    secret_fields: ClassVar[frozenset[str]] = frozenset({"token"})
    secret_scope_fields: ClassVar[frozenset[str]] = frozenset({"url"})

    url: str = Field(min_length=1, max_length=2000, pattern=r"^https?://[^\s/$.?#][^\s]*$")
    token: str = Field(min_length=1, max_length=1000)

    def endpoint(self) -> Endpoint | None:
        return Endpoint.of_url(self.url, "url")


class DestinationUnavailable(Exception):
    """The receiver kept answering 429 or 5xx (or did not answer): Temporal retries the attempt."""


def capture_event(row: dict[str, Any]) -> dict[str, Any]:
    timestamp = row.get("timestamp")
    return {
        "uuid": str(row["uuid"]),
        "event": row["event"],
        "distinct_id": row["distinct_id"],
        "properties": row.get("properties") or {},
        "timestamp": timestamp.astimezone(UTC).isoformat() if isinstance(timestamp, datetime) else timestamp,
    }


class HttpWriter(IntervalWriter):
    def __init__(self, config: HttpConfig, model: str, context: Context) -> None:
        if model != "events":
            raise DestinationUserError(f"the HTTP destination sends events, not {model}")
        self.config = config
        self.batch_rows = BATCH_EVENTS
        self.context = context
        self._session: aiohttp.ClientSession | None = None

    async def write(self, batch: pa.RecordBatch) -> bool:
        rows = python_rows(batch)
        for start in range(0, len(rows), BATCH_EVENTS):
            await self.send([capture_event(row) for row in rows[start : start + BATCH_EVENTS]])
        return True  # taken is taken: a retried attempt may go on from here

    async def send(self, events: list[dict[str, Any]]) -> None:
        """POST one capture batch (gzip), retrying 429 and 5xx answers."""
        if self._session is None:
            self._session = http_session(self.context.allow_private, aiohttp.ClientTimeout(total=60))
        body = json.dumps({"api_key": self.config.token, "batch": events}, default=default).encode()
        await self._post(gzip.compress(body, compresslevel=5))
        self.bytes_written += len(body)

    async def _post(self, body: bytes) -> None:
        assert self._session is not None
        headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
        problem = ""
        for attempt in range(ATTEMPTS):
            if attempt:
                await asyncio.sleep(FIRST_BACKOFF_SECONDS * 2 ** (attempt - 1))
            try:
                async with self._session.post(
                    self.config.url, data=body, headers=headers, allow_redirects=False
                ) as response:
                    if response.status < 300:
                        return
                    if response.status < 400:
                        raise DestinationUserError(
                            f"{self.config.url} answered {response.status}, a redirect to "
                            f"{response.headers.get('Location', '(nowhere)')[:200]}: redirects are not followed; "
                            "configure the URL the batches should go to"
                        )
                    answer = (await response.content.read(ANSWER_BYTES)).decode(errors="replace")
                    if response.status != 429 and response.status < 500:
                        raise DestinationUserError(f"{self.config.url} answered {response.status}: {answer}")
                    problem = f"{response.status}: {answer}"
            except (aiohttp.ClientError, TimeoutError) as error:
                if isinstance(refused := getattr(error, "os_error", None), AddressRefused):
                    raise DestinationUserError(f"{self.config.url}: {refused.strerror}") from error
                problem = f"{type(error).__name__}: {error}"
        raise DestinationUnavailable(f"{self.config.url} did not take the batch after {ATTEMPTS} tries ({problem})")

    async def commit(self, final: bool = True) -> None:
        await self._close()

    async def abort(self) -> None:
        await self._close()  # what was sent stays sent: uuids make sending it again harmless

    async def _close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _answers(config: HttpConfig, context: Context) -> None:
    writer = HttpWriter(config, "events", context)
    try:
        await writer.send([])
    except DestinationUnavailable as error:
        raise DestinationUserError(str(error)) from error
    finally:
        await writer.abort()


DESTINATION = Destination(
    type="HTTP",
    config=HttpConfig,
    open_writer=lambda config, request: HttpWriter(config, request.model, request.context),
    steps=(Step("Send an empty batch", "POST an empty capture batch: the URL and the token answer.", _answers),),
    models=("events",),
)
