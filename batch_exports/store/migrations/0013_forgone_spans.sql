-- depends: 0006_run_checkpoint
-- `owed_from`: the boundary after which the export owes every interval a completed run (its creation, or the last
-- change of its interval); the missing-intervals gauge counts from there.
ALTER TABLE batch_exports ADD COLUMN owed_from timestamptz;
UPDATE batch_exports SET owed_from = coalesce(covered_until, created_at);
-- Spans of intervals (those ending in `(after, through]`) given up by an unpause without backfill (through the
-- API, or a pause and unpause in the Temporal UI or CLI): not exported, and not counted missing.
CREATE TABLE batch_export_forgone_spans (
    id              bigserial   PRIMARY KEY,
    batch_export_id uuid        NOT NULL REFERENCES batch_exports (id),
    after           timestamptz NOT NULL,
    through         timestamptz NOT NULL,
    reason          text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_export_forgone_spans_export ON batch_export_forgone_spans (batch_export_id, through);
