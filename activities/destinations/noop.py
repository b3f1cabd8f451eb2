"""`NoOp`: reads and counts, writes nothing."""

import pyarrow as pa

from activities.destinations import IntervalWriter


class NoOpWriter(IntervalWriter):
    async def write(self, batch: pa.RecordBatch) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def abort(self) -> None:
        return None
