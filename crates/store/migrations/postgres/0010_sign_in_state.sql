-- Sign-in state (postgres): sessions, authorization codes, refresh-token families and consents,
-- and `session` entries in the revocation log (a session ended: tokens carrying its `sid` are
-- refused).

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'api_key_changed', 'signing_key', 'tenant', 'session'));

-- Sign-in sessions, keyed by the SHA-256 digest of the cookie secret (the cookie value itself is
-- never stored). `id` is the public `sid` carried in tokens and named by `session` revocation
-- entries. `user_id` is the text user id (`usr_...`) with no foreign key: sessions and users are
-- built separately, and deleting a user revokes its sessions through the service (which writes
-- the revocation entries), never by a silent cascade.
CREATE TABLE sign_in_sessions (
    digest              BYTEA PRIMARY KEY,
    id                  TEXT NOT NULL UNIQUE,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    user_id             TEXT NOT NULL,
    auth_time           BIGINT NOT NULL,
    -- Space-delimited authentication methods (`pwd`, ...).
    amr                 TEXT NOT NULL,
    acr                 TEXT,
    created_at          BIGINT NOT NULL,
    last_seen_at        BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT
);
CREATE INDEX sign_in_sessions_user ON sign_in_sessions (tenant_id, user_id);
CREATE INDEX sign_in_sessions_expiry ON sign_in_sessions (absolute_expires_at);

-- Authorization codes, keyed by the digest of the code. Redeemed once: `consumed_at` is set by
-- a compare-and-swap; what the redemption issued is recorded so a replay can revoke it.
CREATE TABLE authorization_codes (
    digest                 BYTEA PRIMARY KEY,
    tenant_id              TEXT NOT NULL REFERENCES tenants (id),
    client_id              TEXT NOT NULL,
    redirect_uri           TEXT NOT NULL,
    code_challenge         TEXT NOT NULL,
    nonce                  TEXT,
    -- Space-delimited.
    scope                  TEXT NOT NULL,
    user_id                TEXT NOT NULL,
    sid                    TEXT NOT NULL,
    auth_time              BIGINT NOT NULL,
    acr                    TEXT,
    amr                    TEXT NOT NULL,
    created_at             BIGINT NOT NULL,
    expires_at             BIGINT NOT NULL,
    consumed_at            BIGINT,
    -- Set when a replay was seen (the first redemption's tokens are being revoked).
    replayed_at            BIGINT,
    -- What the first redemption issued: access-token jtis (space-delimited), when they expire,
    -- and the refresh-token family started.
    issued_jtis            TEXT,
    issued_tokens_expire_at BIGINT,
    issued_family_id       TEXT
);
CREATE INDEX authorization_codes_expiry ON authorization_codes (expires_at);

-- Refresh-token families: one per code redemption that issued a refresh token.
CREATE TABLE refresh_families (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    client_id           TEXT NOT NULL,
    user_id             TEXT NOT NULL,
    -- The session the family was issued under (revoking the session revokes the family).
    sid                 TEXT,
    scope               TEXT NOT NULL,
    auth_time           BIGINT NOT NULL,
    acr                 TEXT,
    amr                 TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    idle_expires_at     BIGINT NOT NULL,
    absolute_expires_at BIGINT NOT NULL,
    revoked_at          BIGINT,
    revoked_reason      TEXT
);
CREATE INDEX refresh_families_user ON refresh_families (tenant_id, user_id);
CREATE INDEX refresh_families_sid ON refresh_families (sid);

-- Refresh tokens by digest. Each is rotated at most once (`rotated_at` set by a
-- compare-and-swap, under the family row's lock), naming its one successor.
CREATE TABLE refresh_tokens (
    digest           BYTEA PRIMARY KEY,
    family_id        TEXT NOT NULL REFERENCES refresh_families (id),
    generation       BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    rotated_at       BIGINT,
    successor_digest BYTEA,
    UNIQUE (family_id, generation)
);

-- Consents: the scopes a user granted a client.
CREATE TABLE consents (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    -- Space-delimited.
    scopes     TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, user_id, client_id)
);
