-- Pushed authorization requests (RFC 9126). A client POSTs its authorization request to the PAR
-- endpoint and gets a request_uri back; the table keeps the request under the SHA-256 digest of
-- that URI's random part, never the URI itself.
--
-- Lifecycle: pushed (expires_at = pushed + 60 s) -> opened at the authorization endpoint
-- (expires_at moves to the end of the sign-in window, so a person can type a password) -> used
-- when a code is issued (used_at set once, by a compare-and-swap). A used or expired row never
-- resolves again; rows are pruned after they expire.

CREATE TABLE pushed_requests (
    digest     BYTEA PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    client_id  TEXT NOT NULL,
    params     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    opened_at  BIGINT,
    used_at    BIGINT
);
CREATE INDEX pushed_requests_expiry ON pushed_requests (expires_at);

-- A client that must push every authorization request (RFC 9126 section 6,
-- require_pushed_authorization_requests): a plain request to the authorization endpoint fails.
ALTER TABLE oauth_clients ADD COLUMN require_pushed_requests BIGINT NOT NULL DEFAULT 0;
