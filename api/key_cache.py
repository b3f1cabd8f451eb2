"""The API keys a gateway has found valid, kept until PostgreSQL says that keys or projects changed.

Invariant: an entry is served only while the cache's own connection listens on `CHANNEL`, on which the
triggers of migration 0018 notify every change of a key's validity, scopes or projects and every change or
deletion of a project. A notification forgets everything kept; so does the loss of that connection (a
notification may have been missed), and nothing is kept again until it listens anew. A lookup that began before
either event does not store its answer (`generation`). Only valid keys on existing projects are kept, by the
key's SHA-256 (never its value); each entry lapses after `api_keys.USE_NOTED_EVERY_SECONDS`, so that the
lookup which renews it notes the key's use as before.
"""

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

import asyncpg

from batch_exports.store import api_keys
from batch_exports.store.api_keys import ApiKey

logger = logging.getLogger(__name__)
CANNOT_LISTEN = (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)
"""What connecting, listening or pinging may raise when the database cannot be reached or refuses."""

CHANNEL = "batch_exports_auth"
APPLICATION_NAME = "batch-exports-key-cache"
"""How the listening connection shows in `pg_stat_activity`."""
MAX_ENTRIES = 10_000
RECONNECT_SECONDS = 1.0
CONNECT_TIMEOUT_SECONDS = 5.0
PING_SECONDS = 10.0
"""A connection cut without a word (a host gone, a firewall's timeout) delivers no notification and no end: the
cache asks its connection to answer this often, and drops it when it does not within `CONNECT_TIMEOUT_SECONDS`."""


class KeptKeys:
    """The entries, bounded and lapsing, and the generation that every `forget` moves on."""

    def __init__(
        self,
        *,
        lapse_seconds: float = api_keys.USE_NOTED_EVERY_SECONDS,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lapse = lapse_seconds
        self._max_entries = max_entries
        self.clock = clock
        self._entries: dict[tuple[str, int], tuple[float, ApiKey]] = {}
        """(secure value, project id) -> (when it lapses, the key); oldest first."""
        self.generation = 0
        """Read before a lookup, handed to `put` after it."""

    def get(self, secure_value: str, project_id: int) -> ApiKey | None:
        entry = self._entries.get((secure_value, project_id))
        if entry is None:
            return None
        if self.clock() >= entry[0]:
            del self._entries[(secure_value, project_id)]
            return None
        return entry[1]

    def put(self, generation: int, secure_value: str, project_id: int, key: ApiKey) -> None:
        """Keep `key`, found valid on existing project `project_id` by a lookup that began at `generation`,
        unless something was forgotten since; the oldest entries make room."""
        if generation != self.generation:
            return
        self._entries.pop((secure_value, project_id), None)
        while len(self._entries) >= self._max_entries:
            del self._entries[next(iter(self._entries))]
        self._entries[(secure_value, project_id)] = (self.clock() + self._lapse, key)

    def forget(self) -> None:
        self.generation += 1
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class KeyCache:
    """`KeptKeys` served only while a connection of its own listens on `CHANNEL`."""

    def __init__(self, dsn: str, kept: KeptKeys | None = None) -> None:
        self._dsn = dsn
        self.kept = kept or KeptKeys()
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        """Whether the last attempt to listen failed (said once per outage, not every second)."""

    @property
    def listening(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    @property
    def generation(self) -> int:
        return self.kept.generation

    def get(self, secure_value: str, project_id: int) -> ApiKey | None:
        return self.kept.get(secure_value, project_id) if self.listening else None

    def put(self, generation: int, secure_value: str, project_id: int, key: ApiKey) -> None:
        if self.listening:
            self.kept.put(generation, secure_value, project_id, key)

    async def start(self) -> None:
        """Listen (one attempt, so that a gateway starting beside its database serves from the cache at once),
        then keep listening in the background; a database that does not answer delays nothing."""
        await self._listen()
        self._task = asyncio.create_task(self._keep_listening(), name="key cache listener")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        conn, self._conn = self._conn, None
        self.kept.forget()
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(conn.close(), CONNECT_TIMEOUT_SECONDS)

    async def _listen(self) -> None:
        self._lost.clear()
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(
                self._dsn, timeout=CONNECT_TIMEOUT_SECONDS, server_settings={"application_name": APPLICATION_NAME}
            )
            conn.add_termination_listener(self._on_lost)
            await conn.add_listener(CHANNEL, self._on_change)
        except CANNOT_LISTEN as error:
            if conn is not None:
                conn.terminate()
            if not self._failing:
                logger.warning("key cache: cannot listen for key changes (%s); every request looks its key up", error)
            self._failing = True
            return
        except BaseException:  # cancelled (the gateway closes) between connecting and listening
            if conn is not None:
                conn.terminate()
            raise
        self._conn, self._failing = conn, False
        self.kept.forget()  # a lookup from before the LISTEN may hold an answer that a missed notification changed
        logger.info("key cache: listening for key changes")

    async def _keep_listening(self) -> None:
        while True:
            if not self.listening:
                await asyncio.sleep(RECONNECT_SECONDS)
                await self._listen()
                continue
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._lost.wait(), PING_SECONDS)
                continue
            await self._ping()

    async def _ping(self) -> None:
        conn = self._conn
        if conn is None:
            return
        try:
            await asyncio.wait_for(conn.execute("SELECT 1"), CONNECT_TIMEOUT_SECONDS)
        except CANNOT_LISTEN as error:
            logger.warning("key cache: its connection did not answer (%s); dropping it", error)
            conn.terminate()
            self._on_lost(conn)

    def _on_change(self, conn: object, pid: int, channel: str, payload: str) -> None:
        self.kept.forget()

    def _on_lost(self, conn: object) -> None:
        if conn is not self._conn:
            return
        self._conn = None
        self.kept.forget()
        self._lost.set()
        logger.warning("key cache: lost its connection; every request looks its key up until it listens again")
