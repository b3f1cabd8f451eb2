-- depends: 0015_event_counts
-- Integrations: credentials a project keeps once and its exports name (`integration_id` in a destination
-- config). `encrypted` holds `{config, sensitive_config}` (Fernet, as destination configs are). Deleted ones
-- stay, so that deleted exports that named one still read whole.
CREATE TABLE integrations (
    id              uuid        PRIMARY KEY,
    team_id         bigint      NOT NULL REFERENCES projects (id),
    kind            text        NOT NULL,
    display_name    text        NOT NULL,
    encrypted       bytea       NOT NULL,
    deleted         boolean     NOT NULL DEFAULT false,
    created_at      timestamptz NOT NULL DEFAULT now(),
    last_updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX integrations_team_created ON integrations (team_id, created_at DESC) WHERE NOT deleted;

ALTER TABLE batch_export_destinations ADD COLUMN integration_id uuid REFERENCES integrations (id);
CREATE INDEX batch_export_destinations_integration ON batch_export_destinations (integration_id)
    WHERE integration_id IS NOT NULL;
