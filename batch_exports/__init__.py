"""The shared core of the batch-export service: settings, domain models, database and Temporal access."""
