-- depends: 0002_event_source
-- The sessions model looks up every event of the sessions an interval touched.
CREATE INDEX events_team_session ON events (team_id, (properties ->> '$session_id'))
    WHERE properties ? '$session_id';
