"""The Arrow reader's connections to the source, kept between reads.

A new ADBC connection costs a server process and the driver's query of the type catalog: for a small
interval that is most of the work, so connections that ended a read cleanly wait here for the next.
They run in autocommit mode: an idle one holds no transaction (and no snapshot) open, and under a
`statement_timeout` (a setting): a query that runs longer, however it is consumed, is cancelled by PostgreSQL.
Each knows its server process (pid and start), so that a reader can ask the source whether the process
serving it is still there.
"""

import contextlib
import threading
import weakref
from collections.abc import Callable
from datetime import datetime

import adbc_driver_postgresql.dbapi as adbc

BATCH_BYTES = 8 * 2**20
"""About how much of the stream one record batch holds (the driver's hint). A smaller batch stays in the CPU's
caches while it is decoded and encoded: the worker spends less CPU than with 16 MiB (`bench/export.py`),
and a Parquet row group (one per batch) still holds about 8,000 events."""


class ArrowConnections:
    def __init__(self, dsn: str, keep: int = 8, statement_timeout_seconds: float = 0) -> None:
        self.dsn = dsn
        self.keep = keep
        self.statement_timeout_ms = int(statement_timeout_seconds * 1000)
        self._idle: list[adbc.Connection] = []
        self._lock = threading.Lock()
        self._backends: weakref.WeakKeyDictionary[adbc.Connection, tuple[int, datetime]] = weakref.WeakKeyDictionary()

    def connect(self) -> adbc.Connection:
        conn = adbc.connect(self.dsn, autocommit=True)
        try:
            with conn.cursor() as cursor:  # for the connection's life: every query it runs is bounded
                cursor.execute(f"SET statement_timeout = {self.statement_timeout_ms:d}")
        except BaseException:
            conn.close()
            raise
        with contextlib.suppress(adbc.Error), conn.cursor() as cursor:
            cursor.execute("SELECT pid, backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid()")
            if (row := cursor.fetchone()) is not None:
                self._backends[conn] = (row[0], row[1])
        return conn

    def backend(self, conn: adbc.Connection) -> tuple[int, datetime] | None:
        """The server process of `conn`: its pid and when it started."""
        return self._backends.get(conn)

    def discard(self, conn: adbc.Connection) -> None:
        """Close a connection that may not be kept (a read that failed or stopped early)."""
        self._backends.pop(conn, None)
        conn.close()

    def give_back(self, conn: adbc.Connection) -> None:
        """Keep a connection that ended its read cleanly (or close it, when enough are idle)."""
        with self._lock:
            if len(self._idle) < self.keep:
                self._idle.append(conn)
                return
        self.discard(conn)

    def execute(self, sql: str, opened: Callable[[adbc.Cursor], object]) -> tuple[adbc.Connection, adbc.Cursor]:
        """A connection and a cursor on which `sql` runs; an idle connection that went stale is replaced once.

        `opened` gets each cursor before its query starts, so that another thread may cancel it even while
        the server keeps the query waiting (on a lock, say)."""
        with self._lock:
            idle = self._idle.pop() if self._idle else None
        if idle is not None:
            try:
                return idle, _execute(idle, sql, opened)
            except adbc.Error:
                self.discard(idle)  # closed by the server meanwhile, most likely: once more, on a new one
        conn = self.connect()
        try:
            return conn, _execute(conn, sql, opened)
        except BaseException:
            self.discard(conn)
            raise


def _execute(conn: adbc.Connection, sql: str, opened: Callable[[adbc.Cursor], object]) -> adbc.Cursor:
    cursor = conn.cursor()
    opened(cursor)
    try:
        cursor.adbc_statement.set_options(**{"adbc.postgresql.batch_size_hint_bytes": str(BATCH_BYTES)})
        cursor.execute(sql)
    except BaseException:
        cursor.close()
        raise
    return cursor
