-- depends: 0003_sessions_index
-- Open runs and backfills are looked up by a bound array of statuses (never spelled in SQL text), which a
-- partial index on spelled-out statuses serves only in custom plans: plain indexes serve every plan.
DROP INDEX IF EXISTS batch_export_runs_open;
CREATE INDEX batch_export_runs_status ON batch_export_runs (status);
CREATE INDEX batch_export_backfills_status ON batch_export_backfills (status);
