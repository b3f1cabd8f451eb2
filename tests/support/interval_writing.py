"""A writer driven as the export activity drives it (`activities.export`), for the skeletons' unit tests."""

import pyarrow as pa

from connectors.destinations.base import IntervalWriter


async def write_interval(writer: IntervalWriter, *batches: pa.RecordBatch) -> None:
    """Every batch, then the commit; an abort when anything fails. The skeletons put nothing in the destination
    before the commit, so every write answers False (no checkpoint)."""
    try:
        for batch in batches:
            assert await writer.write(batch) is False
        await writer.commit()
    except BaseException:
        await writer.abort()
        raise
