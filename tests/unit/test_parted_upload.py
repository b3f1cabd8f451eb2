"""An object sent in parts (`object_stores.parts`, S3's and Azure's skeleton), through a store in memory whose
parts finish in any order."""

import asyncio
import random

import pytest

from connectors.destinations.object_stores.parts import PartedUpload


class MemoryObject(PartedUpload[tuple[int, bytes]]):
    def __init__(self, part_bytes: int = 10, in_flight: int = 2) -> None:
        super().__init__(part_bytes, in_flight)
        self.calls: list[str] = []
        self.object: bytes | None = None
        self.flying = self.most_flying = 0
        self.fail_part: int | None = None

    async def _start_parts(self) -> None:
        self.calls.append("start")

    async def _send_part(self, index: int, body: bytes) -> tuple[int, bytes]:
        self.flying += 1
        self.most_flying = max(self.most_flying, self.flying)
        try:
            await asyncio.sleep(random.random() / 100)  # parts finish out of order
            if index == self.fail_part:
                raise ConnectionError(f"part {index} lost")
            return index, body
        finally:
            self.flying -= 1

    async def _complete_parts(self, parts: list[tuple[int, bytes]]) -> None:
        assert [index for index, _ in parts] == list(range(len(parts)))
        self.object = b"".join(body for _, body in parts)

    async def _send_whole(self, body: bytes) -> None:
        self.calls.append("whole")
        self.object = body

    async def _abandon_parts(self) -> None:
        self.calls.append("abandon")


async def send(upload: MemoryObject, chunks: list[bytes]) -> None:
    for chunk in chunks:
        await upload.append(chunk)
    await upload.complete()


def test_a_small_object_goes_in_one_request() -> None:
    upload = MemoryObject()
    asyncio.run(send(upload, [b"abc", b"def"]))
    assert upload.calls == ["whole"] and upload.object == b"abcdef"


def test_a_large_object_goes_in_parts_in_order_a_few_in_flight() -> None:
    upload = MemoryObject(part_bytes=10, in_flight=2)
    chunks = [bytes([65 + i]) * 7 for i in range(20)]
    asyncio.run(send(upload, chunks))
    assert upload.calls == ["start"] and upload.object == b"".join(chunks)
    assert upload.most_flying == 2


def test_a_discarded_upload_cancels_its_parts_and_abandons_them() -> None:
    upload = MemoryObject(part_bytes=10, in_flight=2)
    upload.fail_part = 1

    async def failing() -> None:
        try:
            await send(upload, [b"x" * 10] * 5)
        except ConnectionError:
            await upload.discard()
            raise

    with pytest.raises(ConnectionError, match="part 1"):
        asyncio.run(failing())
    assert upload.calls == ["start", "abandon"] and upload.object is None
    assert all(task.done() for task in upload._parts)
