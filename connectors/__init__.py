"""Connectors: where data is read from and written to, used by the gateway (checks, validation) and the worker.

- `sources/`: one module per model (events, persons, sessions), the streaming Arrow reader, and the selection
  (`filters`, `hogql`) that compiles to the source's SQL;
- `formats/`: how record batches become a file's bytes (JSONLines, Parquet, compression);
- `destinations/`: one module per destination, each with one descriptor, registered in one list;
- `columns`: Arrow columns as text in native code (UUIDs, timestamps, JSON values).

Nothing here imports the service's core: what a connector needs is passed to it.
"""
