"""`python -m entrypoints.migrate`: apply pending schema migrations to BATCH_EXPORTS_DATABASE_URL (beside
`make dev`, the one `.data/env` names)."""

import psycopg

from batch_exports.settings import get_settings
from batch_exports.store import db
from entrypoints import stack_env

if __name__ == "__main__":
    stack_env.load()
    url = get_settings().database_url
    try:
        applied = db.migrate(url)
    except psycopg.OperationalError:
        raise SystemExit(
            stack_env.no_stack("database", stack_env.without_password(url), stack_env.DATABASE_URL)
        ) from None
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
