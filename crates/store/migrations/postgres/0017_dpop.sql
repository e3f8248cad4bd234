-- DPoP (RFC 9449): proof ids seen at the token endpoint, and the key a public client's refresh
-- family is bound to.

-- One row per proof `jti` (per proof key) until the proof's `iat` leaves the window; the primary
-- key makes a proof single use across every node sharing the database.
CREATE TABLE dpop_proof_jtis (
    jkt        TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (jkt, jti)
);
CREATE INDEX dpop_proof_jtis_expiry ON dpop_proof_jtis (expires_at);

-- The RFC 7638 thumbprint of the DPoP key a public client's refresh tokens are bound to; NULL for
-- an unbound family.
ALTER TABLE refresh_families ADD COLUMN dpop_jkt TEXT;
