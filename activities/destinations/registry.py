"""Which writer serves which destination type."""

from datetime import datetime

from activities.destinations import IntervalWriter
from activities.destinations.file import FileWriter
from activities.destinations.files import IntervalFiles
from activities.destinations.http import HttpWriter
from activities.destinations.noop import NoOpWriter
from activities.destinations.postgres import PostgresWriter
from activities.destinations.s3 import S3Writer
from activities.formats import Encoder, encoder_for
from batch_exports.destination_configs import (
    FileConfig,
    FilesConfig,
    HttpConfig,
    NoOpConfig,
    PostgresConfig,
    S3Config,
)
from batch_exports.exports import BatchExport
from batch_exports.settings import Settings


def open_writer(
    export: BatchExport, settings: Settings, start: datetime, end: datetime, first_file: int = 0
) -> IntervalWriter:
    """A writer of one interval; destinations that write files number them from `first_file`."""
    match config := export.destination_config:
        case FileConfig():
            return FileWriter(config, settings.exports_root, _files(export, config, start, end, first_file))
        case PostgresConfig():
            return PostgresWriter(config, export.model, start, end)
        case HttpConfig():
            return HttpWriter(config, export.model)
        case S3Config():
            return S3Writer(config, export.model, _files(export, config, start, end, first_file))
        case NoOpConfig():
            return NoOpWriter()
    raise ValueError(f"no writer for {type(export.destination_config).__name__}")


def _files(export: BatchExport, config: FilesConfig, start: datetime, end: datetime, first_file: int) -> IntervalFiles:
    custom = export.hogql_query is not None

    def new_encoder() -> Encoder:  # one for each file
        return encoder_for(config.file_format, config.compression, export.model, custom)

    return IntervalFiles(new_encoder, start, end, first_file, config.max_file_size_mb)
