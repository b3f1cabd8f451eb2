-- depends: 0003_sessions_index
-- The sessions model also exports the sessions whose last event's time falls in an interval (PostHog's rule:
-- a session's `_inserted_at` is the later of its last ingestion and its `end_timestamp`), found by time.
CREATE INDEX events_team_session_time ON events (team_id, timestamp) WHERE properties ? '$session_id';
