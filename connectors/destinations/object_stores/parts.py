"""A file sent to an object store in parts (S3's multipart upload, Azure's staged blocks): bytes collected
until they make a part, a few parts in flight while the next ones are encoded, one request naming them all at
the end, so the file appears whole; a file too small for a part goes in one request. An abandoned upload
leaves the object as it was.
"""

import asyncio
from abc import abstractmethod
from typing import Generic, TypeVar

from connectors.destinations.object_stores.series import FileUpload

P = TypeVar("P")
"""What sending a part answers, and completing the upload names (a part's number and tag, a block's id)."""


class PartedUpload(FileUpload, Generic[P]):
    def __init__(self, part_bytes: int, in_flight: int) -> None:
        self._part_bytes = part_bytes
        self._parts: list[asyncio.Task[P]] = []
        self._slots = asyncio.Semaphore(in_flight)
        self._pending: list[bytes] = []
        self._pending_bytes = 0

    # The store's hooks.
    async def _start_parts(self) -> None:
        """Before the first part (S3: create the multipart upload)."""

    @abstractmethod
    async def _send_part(self, index: int, body: bytes) -> P:
        """Send part `index` (from 0); several may be in flight at once."""

    @abstractmethod
    async def _complete_parts(self, parts: list[P]) -> None:
        """Make the file appear whole from its parts, in order."""

    @abstractmethod
    async def _send_whole(self, body: bytes) -> None:
        """The whole file in one request (smaller than a part), replacing the object."""

    async def _abandon_parts(self) -> None:
        """After the parts in flight are cancelled: let go of the ones sent (on the store, if it keeps them)."""

    # The order.
    async def append(self, data: bytes) -> None:
        """Collect bytes until they make a part (parts may differ in size; all but the last are at least one)."""
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes >= self._part_bytes:
            await self._send(self._take())

    def _take(self) -> bytes:
        body, self._pending, self._pending_bytes = b"".join(self._pending), [], 0
        return body

    async def _send(self, body: bytes) -> None:
        if not self._parts:
            await self._start_parts()
        index = len(self._parts)
        await self._slots.acquire()

        async def send() -> P:
            try:
                return await self._send_part(index, body)
            finally:
                self._slots.release()

        self._parts.append(asyncio.create_task(send()))

    async def complete(self) -> None:
        """Make the file appear whole; on failure the writer discards, which abandons the upload."""
        if not self._parts:  # small enough for one request
            await self._send_whole(self._take())
            return
        if self._pending:
            await self._send(self._take())
        await self._complete_parts(list(await asyncio.gather(*self._parts)))

    async def discard(self) -> None:
        for task in self._parts:
            task.cancel()
        await asyncio.gather(*self._parts, return_exceptions=True)
        await self._abandon_parts()
