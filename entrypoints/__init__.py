"""Entry points besides the worker (`worker.py`) and the gateway (`python -m api`):

- `dev`: `make dev`, the whole service on one machine with embedded parts (`embedded`);
- `migrate`: `python -m entrypoints.migrate`, the schema migrations;
- `keys`: `python -m entrypoints.keys`, personal API keys.
"""
