"""Streaming compression of a file's bytes: gzip, brotli or zstd, or none.

`compressor(kind)` returns an object with `compress(data) -> bytes` and `flush() -> bytes`, so a writer
can compress as it goes and hold only what is waiting to be written.
"""

from typing import Protocol

import brotli
import zstandard
from isal import isal_zlib

from connectors.formats.options import Compression

SUFFIXES = {Compression.GZIP: ".gz", Compression.BROTLI: ".br", Compression.ZSTD: ".zst"}


class Compressor(Protocol):
    def compress(self, data: bytes | memoryview) -> bytes: ...

    def flush(self) -> bytes: ...


class _Identity:
    def compress(self, data: bytes | memoryview) -> bytes:
        return bytes(data)

    def flush(self) -> bytes:
        return b""


class _Brotli:
    def __init__(self) -> None:
        self._compressor = brotli.Compressor(quality=5)

    def compress(self, data: bytes | memoryview) -> bytes:
        return self._compressor.process(bytes(data))  # type: ignore[no-any-return]

    def flush(self) -> bytes:
        return self._compressor.finish()  # type: ignore[no-any-return]


def compressor(kind: Compression | None) -> Compressor:
    match kind:
        case Compression.GZIP:
            # ISA-L's deflate: a standard gzip stream, about ten times as fast as zlib's level 6 and as small.
            return isal_zlib.compressobj(2, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
        case Compression.BROTLI:
            return _Brotli()
        case Compression.ZSTD:
            return zstandard.ZstdCompressor(level=3).compressobj()  # type: ignore[no-any-return]
    return _Identity()
