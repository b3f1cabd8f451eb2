"""Persistence: one module per table, each owning all the SQL on its table, over one asyncpg pool per process.

Statuses are bound as arrays of their enum (`contracts.statuses`), never spelled in SQL text.
"""
