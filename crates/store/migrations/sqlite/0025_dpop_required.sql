-- DPoP (RFC 9449) remainder.
--
-- A client that must prove possession of a key at the token endpoint: a token request without
-- a valid DPoP proof is refused, whatever the grant (per-client "DPoP required").
ALTER TABLE oauth_clients ADD COLUMN require_dpop BIGINT NOT NULL DEFAULT 0;

-- The JWK SHA-256 thumbprint an authorization request bound its code to (RFC 9449 section 10,
-- `dpop_jkt`): the redeeming token request's proof must be signed by that key. NULL: unbound.
ALTER TABLE authorization_codes ADD COLUMN dpop_jkt TEXT;

-- A tenant's OAuth rules for all its clients. require_pushed_requests: every authorization
-- request of every client of the tenant must come through the PAR endpoint (RFC 9126 section 6),
-- whatever the client's own setting. No row: nothing required beyond the clients' own settings.
CREATE TABLE tenant_oauth_policies (
    tenant_id               TEXT PRIMARY KEY REFERENCES tenants (id),
    require_pushed_requests BIGINT NOT NULL DEFAULT 0,
    updated_at              BIGINT NOT NULL
);
