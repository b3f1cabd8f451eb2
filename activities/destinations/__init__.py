"""Destinations: where a run writes its interval, one module per destination behind one interface.

A destination writes an interval so that writing it again leaves exactly one copy of each record:
`commit` makes the whole interval visible at once, replacing what an earlier attempt wrote; `abort`
leaves the destination as it was.
"""

from abc import ABC, abstractmethod

import pyarrow as pa

from batch_exports import hosts
from batch_exports.destination_configs import DestinationConfig


class DestinationUserError(Exception):
    """An error only the user can fix (bad credentials, missing bucket, no permission): never retried."""


class IntervalWriter(ABC):
    bytes_written: int = 0
    files: int = 0
    """How many files this writer completed (destinations that write files)."""
    batch_bytes: int = 0
    """The size of batch (Arrow bytes) this writer wants, if it has a wish: one that splits files ends them
    between batches, so batches of a fraction of a file let each file end near the size limit."""

    @abstractmethod
    async def write(self, batch: pa.RecordBatch) -> bool:
        """Write a batch; True when everything written so far is in the destination for good, so a
        retried attempt may resume after it."""

    @abstractmethod
    async def commit(self, final: bool = True) -> None:
        """Make what was written visible; `final` when no continued execution follows in this interval."""

    @abstractmethod
    async def abort(self) -> None: ...


async def ensure_allowed_host(config: DestinationConfig, allow_private: bool) -> None:
    """Refuse (as the user's error) a destination host this service may not reach."""
    remote = config.remote_host()
    if remote and (problem := await hosts.refused(remote[0], allow_private)):
        raise DestinationUserError(problem)
