-- depends: 0005_coverage_and_resets
-- The export's checkpoint, saved after each step the destination holds for good (besides the heartbeat, which
-- Temporal receives at most every few seconds): a worker killed between heartbeats loses nothing, and the
-- attempt's scheduled time in it fences off an earlier attempt still running once a later one has taken over.
ALTER TABLE batch_export_runs ADD COLUMN checkpoint jsonb;
