-- Foundation schema (PostgreSQL). Timestamps are Unix milliseconds (BIGINT) so both backends
-- and the core share one representation.

CREATE TABLE tenants (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    status       TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);

-- The reserved tenant that owns global administrators and installation-wide events.
INSERT INTO tenants (id, display_name, status, created_at, updated_at)
VALUES ('system', 'System', 'active', 0, 0);

CREATE TABLE signing_keys (
    kid                TEXT PRIMARY KEY,
    algorithm          TEXT NOT NULL,
    state              TEXT NOT NULL CHECK (state IN ('pending', 'active', 'retired', 'revoked')),
    public_jwk         TEXT NOT NULL,
    kek_id             TEXT NOT NULL,
    sealed_private_key BYTEA NOT NULL,
    created_at         BIGINT NOT NULL,
    activates_at       BIGINT NOT NULL,
    retired_at         BIGINT,
    publish_until      BIGINT
);
-- At most one key signs at a time, whatever races or crashes happen.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (state) WHERE state = 'active';

CREATE TABLE admin_credentials (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    role           TEXT NOT NULL CHECK (role IN ('global_admin', 'tenant_admin')),
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    secret_digest  BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT,
    revoked_at     BIGINT,
    last_used_at   BIGINT
);
CREATE INDEX admin_credentials_tenant ON admin_credentials (tenant_id);

CREATE TABLE audit_events (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id            TEXT NOT NULL UNIQUE,
    occurred_at   BIGINT NOT NULL,
    tenant_id     TEXT NOT NULL,
    actor         TEXT NOT NULL,
    credential_id TEXT,
    client_ip     TEXT,
    user_agent    TEXT,
    action        TEXT NOT NULL,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    request_id    TEXT,
    target        TEXT
);
CREATE INDEX audit_events_tenant_time ON audit_events (tenant_id, occurred_at);
