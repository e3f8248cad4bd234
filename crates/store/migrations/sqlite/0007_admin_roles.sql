-- Admin roles (sqlite): besides global and tenant administrators, a credential may be an
-- auditor (reads, audit included), an API key manager, or a service credential (a verifier or
-- gateway: reads the revocation feed and verifies API keys).
--
-- SQLite cannot alter a CHECK constraint, so the table is rebuilt with every row, its foreign key
-- and its index, exactly as 0001 defined them. Nothing references admin_credentials, so dropping
-- the old table breaks no foreign key. The migration runs in one transaction: a crash leaves the
-- old table untouched.

CREATE TABLE admin_credentials_new (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL REFERENCES tenants (id),
    role           TEXT NOT NULL CHECK (role IN ('global_admin', 'tenant_admin', 'auditor', 'api_key_manager', 'service')),
    name           TEXT NOT NULL,
    display_prefix TEXT NOT NULL,
    secret_digest  BLOB NOT NULL,
    created_at     BIGINT NOT NULL,
    created_by     TEXT,
    revoked_at     BIGINT,
    last_used_at   BIGINT
);

INSERT INTO admin_credentials_new (id, tenant_id, role, name, display_prefix, secret_digest,
                                   created_at, created_by, revoked_at, last_used_at)
    SELECT id, tenant_id, role, name, display_prefix, secret_digest,
           created_at, created_by, revoked_at, last_used_at
    FROM admin_credentials;

DROP TABLE admin_credentials;
ALTER TABLE admin_credentials_new RENAME TO admin_credentials;
CREATE INDEX admin_credentials_tenant ON admin_credentials (tenant_id);
