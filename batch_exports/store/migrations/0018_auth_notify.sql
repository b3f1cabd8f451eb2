-- depends: 0017_sessions_by_time
-- Gateways keep the API keys they found valid (`api/key_cache.py`) and forget them all when told on the
-- `batch_exports_auth` channel: by every statement that may change what a key may do (its revocation, scopes,
-- projects or value; its deletion) and by every change or deletion of a project, once per statement. Noting a
-- key's use (`SET last_used_at`, at most once a minute per key) is not among them: `UPDATE OF` names columns.
CREATE FUNCTION batch_exports_auth_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('batch_exports_auth', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER personal_api_keys_auth_changed
    AFTER UPDATE OF revoked_at, scopes, project_ids, secure_value OR DELETE OR TRUNCATE ON personal_api_keys
    FOR EACH STATEMENT EXECUTE FUNCTION batch_exports_auth_changed();
CREATE TRIGGER projects_auth_changed
    AFTER UPDATE OR DELETE OR TRUNCATE ON projects
    FOR EACH STATEMENT EXECUTE FUNCTION batch_exports_auth_changed();
