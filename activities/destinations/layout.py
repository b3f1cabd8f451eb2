"""Where an interval's files go: names that depend only on the export, the interval and the file's
number, so a rerun of the same interval overwrites the same files."""

from datetime import UTC, datetime


def interval_stem(start: datetime, end: datetime) -> str:
    """`{start}-{end}`, both bounds as `%Y-%m-%dT%H:%M:%SZ`."""
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    return f"{start.astimezone(UTC):{stamp}}-{end.astimezone(UTC):{stamp}}"


def interval_file_name(start: datetime, end: datetime, suffix: str, number: int = 0) -> str:
    """`{start}-{end}[-{number}]{suffix}`; file 0 has no number."""
    return f"{interval_stem(start, end)}{f'-{number}' if number else ''}{suffix}"


def manifest_name(start: datetime, end: datetime) -> str:
    return f"{interval_stem(start, end)}_manifest.json"
