"""`python -m entrypoints.migrate`: apply pending schema migrations to BATCH_EXPORTS_DATABASE_URL."""

from batch_exports.settings import get_settings
from batch_exports.store import db

if __name__ == "__main__":
    applied = db.migrate(get_settings().database_url)
    print(f"applied {len(applied)} migration(s){': ' + ', '.join(applied) if applied else ''}")
