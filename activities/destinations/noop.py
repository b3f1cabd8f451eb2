"""`NoOp`: reads and counts, writes nothing."""

from typing import Any

from activities.destinations import IntervalWriter


class NoOpWriter(IntervalWriter):
    async def write(self, batch: list[dict[str, Any]]) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def abort(self) -> None:
        return None
