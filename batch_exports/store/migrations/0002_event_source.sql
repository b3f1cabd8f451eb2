-- depends: 0001_metadata
-- The embedded event source: events, persons and the distinct ids that point at them.

CREATE TABLE events (
    uuid           uuid        NOT NULL,
    team_id        bigint      NOT NULL,
    event          text        NOT NULL,
    distinct_id    text        NOT NULL,
    properties     jsonb       NOT NULL DEFAULT '{}',
    person_id      uuid,
    person_properties jsonb    NOT NULL DEFAULT '{}',
    timestamp      timestamptz NOT NULL,
    created_at     timestamptz NOT NULL,
    elements_chain text        NOT NULL DEFAULT '',
    inserted_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (team_id, uuid)
);
-- Runs read one team's events by ingestion time, in a stable order a checkpoint can resume from.
CREATE INDEX events_team_inserted ON events (team_id, inserted_at, uuid);

CREATE TABLE persons (
    id          uuid        PRIMARY KEY,
    team_id     bigint      NOT NULL,
    properties  jsonb       NOT NULL DEFAULT '{}',
    version     bigint      NOT NULL DEFAULT 0,
    is_deleted  boolean     NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX persons_team_updated ON persons (team_id, updated_at);

CREATE TABLE person_distinct_ids (
    team_id     bigint      NOT NULL,
    distinct_id text        NOT NULL,
    person_id   uuid        NOT NULL REFERENCES persons (id),
    version     bigint      NOT NULL DEFAULT 0,
    updated_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (team_id, distinct_id)
);
CREATE INDEX person_distinct_ids_team_updated ON person_distinct_ids (team_id, updated_at);
