"""Where an interval's files go: names that depend only on the export and the interval, so a rerun
of the same interval overwrites the same files."""

from datetime import UTC, datetime


def interval_file_name(start: datetime, end: datetime, suffix: str, number: int = 0) -> str:
    """`{start}-{end}[-{number}]{suffix}`, both bounds as `%Y-%m-%dT%H:%M:%SZ`; file 0 has no number."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    numbered = f"-{number}" if number else ""
    return f"{start.astimezone(UTC):{stamp}}-{end.astimezone(UTC):{stamp}}{numbered}{suffix}"
