-- depends: 0006_run_checkpoint
-- How many events each team ingested per five minutes and event name, kept by the statements that write
-- events: a backfill's estimate (`dry_run`) counts a year of intervals from these rows, not from the events.
-- Five minutes is the shortest interval, and every boundary of every interval falls on one (timezone offsets
-- are whole quarters of an hour).
CREATE TABLE event_counts (
    team_id bigint      NOT NULL,
    bucket  timestamptz NOT NULL,
    event   text        NOT NULL,
    n       bigint      NOT NULL,
    PRIMARY KEY (team_id, bucket, event)
);

CREATE FUNCTION event_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- In key order, so that two statements counting the same buckets wait for each other, never deadlock.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        INSERT INTO event_counts AS c (team_id, bucket, event, n)
        SELECT team_id, date_bin('5 minutes', inserted_at, '1970-01-01 00:00:00+00'), event, -count(*)
        FROM old_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (team_id, bucket, event) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        INSERT INTO event_counts AS c (team_id, bucket, event, n)
        SELECT team_id, date_bin('5 minutes', inserted_at, '1970-01-01 00:00:00+00'), event, count(*)
        FROM new_rows GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
        ON CONFLICT (team_id, bucket, event) DO UPDATE SET n = c.n + excluded.n;
    END IF;
    RETURN NULL;
END
$$;

CREATE TRIGGER event_counts_insert AFTER INSERT ON events
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();
CREATE TRIGGER event_counts_update AFTER UPDATE ON events
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();
CREATE TRIGGER event_counts_delete AFTER DELETE ON events
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION event_counts_apply();

INSERT INTO event_counts (team_id, bucket, event, n)
SELECT team_id, date_bin('5 minutes', inserted_at, '1970-01-01 00:00:00+00'), event, count(*)
FROM events GROUP BY 1, 2, 3;
