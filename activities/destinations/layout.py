"""Where an interval's files go: names that depend only on the export and the interval, so a rerun
of the same interval overwrites the same files."""

from datetime import UTC, datetime

from activities.formats.compression import SUFFIXES
from batch_exports.destination_configs import Compression


def interval_file_name(
    start: datetime, end: datetime, extension: str, compression: Compression | None, number: int = 0
) -> str:
    """`{start}-{end}[-{number}].{extension}[.gz]`, both bounds as `%Y-%m-%dT%H:%M:%SZ`; file 0 has no number."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    suffix = SUFFIXES[compression] if compression else ""
    numbered = f"-{number}" if number else ""
    return f"{start.astimezone(UTC):{stamp}}-{end.astimezone(UTC):{stamp}}{numbered}.{extension}{suffix}"
