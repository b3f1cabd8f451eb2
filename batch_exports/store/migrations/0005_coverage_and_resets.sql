-- depends: 0004_status_indexes
-- `covered_until`: every boundary up to it has a run, is being run, or was forgone while paused (reconciliation
-- runs the ones after it that the schedule did not fire at). NULL until reconciliation first looks.
ALTER TABLE batch_exports ADD COLUMN covered_until timestamptz;
-- A run started by `temporal workflow reset` names the run (row) it replaced.
ALTER TABLE batch_export_runs ADD COLUMN replaced_run_id uuid REFERENCES batch_export_runs (id);
-- Runs are looked up by their interval (has this interval a run?) and by their backfill (its progress).
CREATE INDEX batch_export_runs_export_interval_end ON batch_export_runs (batch_export_id, data_interval_end);
CREATE INDEX batch_export_runs_backfill ON batch_export_runs (backfill_id) WHERE backfill_id IS NOT NULL;
-- What reconciliation last saw of the export's Temporal Schedule (fingerprints of what it should be and what it
-- was, the scheduler's own changes seen), so that a change made outside the API is noticed.
ALTER TABLE batch_exports ADD COLUMN schedule_state jsonb;
-- Where a backfill came from: `api` (its runs are its own), `unpause` (it runs what a pause skipped, counting
-- the intervals that had runs already), `schedule` (`temporal schedule backfill`: the schedule starts its runs).
ALTER TABLE batch_export_backfills ADD COLUMN kind text NOT NULL DEFAULT 'api';
