"""Which writer serves which destination type."""

from datetime import datetime

from activities.destinations import IntervalWriter
from activities.destinations.file import FileWriter
from activities.destinations.noop import NoOpWriter
from batch_exports.destination_configs import DestinationConfig, FileConfig, NoOpConfig
from batch_exports.settings import Settings


def open_writer(
    config: DestinationConfig, settings: Settings, start: datetime, end: datetime, segment: int = 0
) -> IntervalWriter:
    """A writer of one interval, or of segment `segment` of it when a run continued as new."""
    match config:
        case FileConfig():
            return FileWriter(config, settings.exports_root, start, end, segment)
        case NoOpConfig():
            return NoOpWriter()
    raise ValueError(f"no writer for {type(config).__name__}")
