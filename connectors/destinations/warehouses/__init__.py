"""Databases and warehouses: rows into a table of the user's, exactly once, by stage then apply (`staging`,
shared by every dialect): `Postgres`, `Redshift`, `Snowflake`, `BigQuery`."""
