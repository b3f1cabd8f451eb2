"""`NoOp`: reads and counts, writes nothing."""

import pyarrow as pa

from activities.destinations import IntervalWriter


class NoOpWriter(IntervalWriter):
    async def write(self, batch: pa.RecordBatch) -> bool:
        return True

    async def commit(self, final: bool = True) -> None:
        return None

    async def abort(self) -> None:
        return None
