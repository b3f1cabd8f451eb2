"""Destinations that write an interval as numbered files with a manifest (`series`): `S3` (and the S3-compatible
ones), `AzureBlob` and `File`, the last under the project's own directory (`local_paths`)."""
