"""Databases and warehouses: rows into a table of the user's, exactly once: `Postgres`."""
