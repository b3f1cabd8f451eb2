#!/bin/sh
# One-shot (compose `temporal-schema`): create Temporal's databases if missing and apply every schema version
# newer than the stored one. Safe to run again: `setup-schema -v 0.0` leaves a stamped database alone.
set -eu
sql() { temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -u "$POSTGRES_USER" -p "${DB_PORT:-5432}" "$@"; }
for database in temporal temporal_visibility; do
  sql --db "$database" create 2>/dev/null || echo "database $database exists"
done
sql --db temporal setup-schema -v 0.0
sql --db temporal update-schema -d /etc/temporal/schema/postgresql/v12/temporal/versioned
sql --db temporal_visibility setup-schema -v 0.0
sql --db temporal_visibility update-schema -d /etc/temporal/schema/postgresql/v12/visibility/versioned
