"""Which writer serves which destination type."""

from datetime import datetime

from activities.destinations import IntervalWriter
from activities.destinations.file import FileWriter
from activities.destinations.http import HttpWriter
from activities.destinations.noop import NoOpWriter
from activities.destinations.postgres import PostgresWriter
from activities.destinations.s3 import S3Writer
from activities.formats import encoder_for
from batch_exports.destination_configs import FileConfig, HttpConfig, NoOpConfig, PostgresConfig, S3Config
from batch_exports.exports import BatchExport
from batch_exports.settings import Settings


def open_writer(
    export: BatchExport, settings: Settings, start: datetime, end: datetime, segment: int = 0
) -> IntervalWriter:
    """A writer of one interval, or of segment `segment` of it when a run continued as new."""
    custom = export.hogql_query is not None
    match config := export.destination_config:
        case FileConfig():
            encoder = encoder_for(config.file_format, config.compression, export.model, custom)
            return FileWriter(config, settings.exports_root, encoder, start, end, segment)
        case PostgresConfig():
            return PostgresWriter(config, export.model, start, end)
        case HttpConfig():
            return HttpWriter(config, export.model)
        case S3Config():
            encoder = encoder_for(config.file_format, config.compression, export.model, custom)
            return S3Writer(config, export.model, encoder, start, end, segment)
        case NoOpConfig():
            return NoOpWriter()
    raise ValueError(f"no writer for {type(export.destination_config).__name__}")
