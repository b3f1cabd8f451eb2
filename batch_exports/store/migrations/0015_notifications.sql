-- depends: 0015_integrations
-- Where a project is told about its exports (a webhook or an e-mail address, encrypted: a Slack webhook URL is
-- a credential), and which notices went out: at most one per export, kind and day.
CREATE TABLE notification_targets (
    id         uuid        PRIMARY KEY,
    team_id    bigint      NOT NULL REFERENCES projects (id),
    kind       text        NOT NULL,
    display    text        NOT NULL,
    encrypted  bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX notification_targets_team ON notification_targets (team_id, created_at DESC);

CREATE TABLE batch_export_notices (
    batch_export_id uuid        NOT NULL REFERENCES batch_exports (id),
    kind            text        NOT NULL,
    day             date        NOT NULL,
    sent_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (batch_export_id, kind, day)
);
CREATE INDEX batch_export_notices_latest ON batch_export_notices (batch_export_id, sent_at DESC);
