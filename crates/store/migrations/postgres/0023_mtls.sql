-- Mutual-TLS client authentication and certificate-bound tokens (RFC 8705).

-- A tenant's CA sets: the trust anchors a `tls_client_auth` client's certificate must chain to.
-- `pem` is one or more PEM CERTIFICATE blocks, checked by the admin API before it is stored.
CREATE TABLE tenant_ca_sets (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    pem        TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (tenant_id, name)
);

-- The one certificate fact a `tls_client_auth` client is registered with (RFC 8705 section
-- 2.1.2): the metadata parameter's name (tls_client_auth_san_dns, ...) and its value. Both NULL
-- for every other method.
ALTER TABLE oauth_clients ADD COLUMN tls_subject_kind TEXT;
ALTER TABLE oauth_clients ADD COLUMN tls_subject_value TEXT;
-- RFC 8705 `tls_client_certificate_bound_access_tokens` for a client that does not authenticate
-- with its certificate: tokens are bound to a certificate it presents anyway. (mTLS clients'
-- tokens are always bound.)
ALTER TABLE oauth_clients ADD COLUMN certificate_bound_tokens BIGINT NOT NULL DEFAULT 0;

-- The `x5t#S256` of the certificate an mTLS client's refresh family is bound to; NULL for an
-- unbound family.
ALTER TABLE refresh_families ADD COLUMN cert_x5t TEXT;
