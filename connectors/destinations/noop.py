"""`NoOp`: reads and counts, writes nothing."""

import pyarrow as pa

from connectors.destinations.base import Context, Destination, DestinationConfig, IntervalWriter, Step


class NoOpConfig(DestinationConfig):
    pass


class NoOpWriter(IntervalWriter):
    async def write(self, batch: pa.RecordBatch) -> bool:
        return True

    async def commit(self, final: bool = True) -> None:
        return None

    async def abort(self) -> None:
        return None


async def _nothing(config: NoOpConfig, context: Context) -> None:
    return None


DESTINATION = Destination(
    type="NoOp",
    config=NoOpConfig,
    open_writer=lambda config, request: NoOpWriter(),
    steps=(Step("Nothing to check", "The NoOp destination writes nothing.", _nothing),),
)
