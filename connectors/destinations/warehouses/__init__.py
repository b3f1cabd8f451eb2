"""Warehouse destinations: a table of the user's warehouse, loaded through a stage and applied in one statement."""
