"""A PostgreSQL connection that counts: every statement it sends is appended to a list its pool shares."""

from typing import Any, ClassVar

import asyncpg


class CountingConnection(asyncpg.Connection):  # type: ignore[misc]
    """A connection that appends every statement it sends to `sent` (shared by the pool's connections)."""

    sent: ClassVar[list[str]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_query_logger(lambda record: self.sent.append(record.query))
