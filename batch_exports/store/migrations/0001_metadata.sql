-- The service's metadata: projects, personal API keys, batch exports, destinations, runs, backfills, logs.

CREATE TABLE projects (
    id          bigint PRIMARY KEY,
    name        text        NOT NULL,
    api_token   text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as the SHA-256 of the secret: they are long random strings, so a fast hash is safe.
CREATE TABLE personal_api_keys (
    id            uuid        PRIMARY KEY,
    label         text        NOT NULL,
    secure_value  text        NOT NULL UNIQUE,
    mask_value    text        NOT NULL,
    scopes        text[]      NOT NULL,
    project_ids   bigint[],   -- NULL: every project
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);

-- The whole config is encrypted (Fernet); only the type is readable.
CREATE TABLE batch_export_destinations (
    id               uuid        PRIMARY KEY,
    type             text        NOT NULL,
    config_encrypted bytea       NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE batch_exports (
    id              uuid        PRIMARY KEY,
    team_id         bigint      NOT NULL REFERENCES projects (id),
    name            text        NOT NULL,
    model           text        NOT NULL DEFAULT 'events',
    destination_id  uuid        NOT NULL REFERENCES batch_export_destinations (id),
    interval        text        NOT NULL,
    paused          boolean     NOT NULL DEFAULT false,
    deleted         boolean     NOT NULL DEFAULT false,
    start_at        timestamptz,
    end_at          timestamptz,
    timezone        text        NOT NULL DEFAULT 'UTC',
    offset_day      smallint,
    offset_hour     smallint,
    hogql_query     text,
    filters         jsonb,
    schema          jsonb,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_updated_at timestamptz NOT NULL DEFAULT now(),
    last_paused_at  timestamptz
);
CREATE INDEX batch_exports_team_created ON batch_exports (team_id, created_at DESC) WHERE NOT deleted;

CREATE TABLE batch_export_backfills (
    id              uuid        PRIMARY KEY,
    team_id         bigint      NOT NULL REFERENCES projects (id),
    batch_export_id uuid        NOT NULL REFERENCES batch_exports (id),
    start_at        timestamptz,
    end_at          timestamptz,
    status          text        NOT NULL,
    total_runs      integer,
    finished_runs   integer     NOT NULL DEFAULT 0,
    total_records_count bigint,
    workflow_id     text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    finished_at     timestamptz,
    last_updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per workflow execution (workflow id + run id).
CREATE TABLE batch_export_runs (
    id                  uuid        PRIMARY KEY,
    batch_export_id     uuid        NOT NULL REFERENCES batch_exports (id),
    backfill_id         uuid        REFERENCES batch_export_backfills (id),
    workflow_id         text        NOT NULL,
    workflow_run_id     text        NOT NULL,
    status              text        NOT NULL,
    records_completed   bigint      NOT NULL DEFAULT 0,
    records_failed      bigint      NOT NULL DEFAULT 0,
    records_total_count bigint,
    bytes_exported      bigint      NOT NULL DEFAULT 0,
    latest_error        text,
    data_interval_start timestamptz NOT NULL,
    data_interval_end   timestamptz NOT NULL,
    cursor              text,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    last_updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (workflow_id, workflow_run_id)
);
CREATE INDEX batch_export_runs_export_created ON batch_export_runs (batch_export_id, created_at DESC, id DESC);
CREATE INDEX batch_export_runs_export_interval
    ON batch_export_runs (batch_export_id, data_interval_start DESC, id DESC);
CREATE INDEX batch_export_runs_open ON batch_export_runs (status) WHERE status IN ('Starting', 'Running');

CREATE TABLE batch_export_logs (
    id              bigserial   PRIMARY KEY,
    team_id         bigint      NOT NULL,
    batch_export_id uuid        NOT NULL,
    run_id          uuid,
    workflow_run_id text,
    level           text        NOT NULL,
    message         text        NOT NULL,
    timestamp       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_export_logs_export_ts ON batch_export_logs (batch_export_id, timestamp DESC);
