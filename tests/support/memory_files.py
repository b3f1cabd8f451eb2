"""An in-memory place for files: the file-series writer's contract exercised without a disk or a bucket."""

from dataclasses import dataclass, field

from connectors.destinations.object_stores.series import FileSeriesWriter, FileUpload, IntervalFiles


@dataclass
class MemoryUpload(FileUpload):
    files: dict[str, bytes]
    name: str
    parts: list[bytes] = field(default_factory=list)

    async def append(self, data: bytes) -> None:
        self.parts.append(data)

    async def complete(self) -> None:
        self.files[self.name] = b"".join(self.parts)  # appears whole, replacing any earlier copy

    async def discard(self) -> None:
        self.parts.clear()


class MemoryWriter(FileSeriesWriter):
    """Writes into `files` (name -> bytes), shared between writers as one directory would be."""

    def __init__(self, files: dict[str, bytes], interval: IntervalFiles) -> None:
        super().__init__(interval)
        self.stored = files

    async def _open(self, name: str) -> FileUpload:
        return MemoryUpload(self.stored, name)

    async def _exists(self, name: str) -> bool:
        return name in self.stored

    async def _remove(self, names: list[str]) -> None:
        for name in names:
            self.stored.pop(name, None)

    async def _put(self, name: str, data: bytes) -> None:
        self.stored[name] = data

    def _address(self, name: str) -> str:
        return name
