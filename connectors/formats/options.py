"""The file formats and compressions a destination that writes files may be configured with."""

from enum import StrEnum


class FileFormat(StrEnum):
    JSONLINES = "JSONLines"
    PARQUET = "Parquet"


class Compression(StrEnum):
    GZIP = "gzip"
    BROTLI = "brotli"
    ZSTD = "zstd"
    SNAPPY = "snappy"
    LZ4 = "lz4"


COMPRESSIONS = {
    FileFormat.JSONLINES: {Compression.GZIP, Compression.BROTLI, Compression.ZSTD},
    FileFormat.PARQUET: {Compression.ZSTD, Compression.SNAPPY, Compression.GZIP, Compression.LZ4, Compression.BROTLI},
}


def check_compression(file_format: FileFormat, compression: Compression | None) -> None:
    if compression is not None and compression not in COMPRESSIONS[file_format]:
        allowed = ", ".join(sorted(c.value for c in COMPRESSIONS[file_format]))
        raise ValueError(f"{file_format.value} files take compression {allowed} (or none), not {compression.value}")
