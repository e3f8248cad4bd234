-- API keys (sqlite). Only the SHA-256 digest of a key is stored, with a non-secret display prefix.
-- Lists (scopes, audiences, CIDRs) are space-separated text validated by the server; states are
-- timestamps (disabled_at, revoked_at) rather than flags, so both backends store them alike.

CREATE TABLE api_keys (
    id                       TEXT PRIMARY KEY,
    tenant_id                TEXT NOT NULL REFERENCES tenants (id),
    environment              TEXT NOT NULL,
    name                     TEXT NOT NULL,
    description              TEXT NOT NULL DEFAULT '',
    owner                    TEXT NOT NULL,
    scopes                   TEXT NOT NULL DEFAULT '',
    audiences                TEXT,
    ip_allowlist             TEXT,
    rate_limit_requests      BIGINT,
    rate_limit_window_secs   BIGINT,
    metadata                 TEXT NOT NULL DEFAULT '{}',
    display_prefix           TEXT NOT NULL,
    digest                   BLOB NOT NULL,
    created_at               BIGINT NOT NULL,
    created_by               TEXT,
    expires_at               BIGINT,
    disabled_at              BIGINT,
    revoked_at               BIGINT,
    revoked_reason           TEXT,
    replaced_by              TEXT,
    rotation_overlap_ends_at BIGINT,
    last_used_at             BIGINT,
    last_used_ip             TEXT
);
CREATE INDEX api_keys_tenant_env ON api_keys (tenant_id, environment);
CREATE INDEX api_keys_tenant_owner ON api_keys (tenant_id, owner);

-- Per-tenant lifetime policy for new keys; a tenant without a row gets the built-in default.
CREATE TABLE api_key_policies (
    tenant_id        TEXT PRIMARY KEY REFERENCES tenants (id),
    default_ttl_secs BIGINT,
    max_ttl_secs     BIGINT,
    allow_never      BIGINT NOT NULL CHECK (allow_never IN (0, 1)),
    updated_at       BIGINT NOT NULL
);
