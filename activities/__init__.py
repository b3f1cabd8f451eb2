"""Activities: the side effects of the workflows, each a thin adapter over the core and the connectors.

Every activity class is built from the one `Runtime` (see `batch_exports.runtime`):
- `runs`: a run records itself when it starts and how it ended when it finishes;
- `export`: read one interval from the source and write it to the destination, with a checkpoint;
- `backfills`: a backfill's row, and waiting for an interval that is already running;
- `reconciliation`: the books made to agree with Temporal.
"""
