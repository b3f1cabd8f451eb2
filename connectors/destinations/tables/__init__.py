"""Lake tables: `Iceberg` and `DeltaLake`. Data files are streamed to the table's storage while the interval is
read (`files`), the storage is found and checked (`location`), and the interval is one commit of the table that
replaces what an earlier attempt of the run wrote (`rows`)."""
