-- Token service for machines: resource servers, OAuth clients and their secrets, the revocation
-- log, and seen client-assertion ids. Timestamps are Unix milliseconds.

CREATE TABLE resource_servers (
    id         TEXT PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    name       TEXT NOT NULL,
    audience   TEXT NOT NULL,
    -- Space-delimited scope tokens (RFC 6749 scope syntax has no spaces).
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (tenant_id, audience)
);

CREATE TABLE oauth_clients (
    id                    TEXT PRIMARY KEY,
    tenant_id             TEXT NOT NULL REFERENCES tenants (id),
    name                  TEXT NOT NULL,
    environment           TEXT NOT NULL,
    auth_method           TEXT NOT NULL,
    -- Space-delimited lists.
    grant_types           TEXT NOT NULL,
    scopes                TEXT NOT NULL,
    -- The first audience is the default.
    audiences             TEXT NOT NULL,
    access_token_ttl_secs BIGINT NOT NULL,
    can_introspect        BIGINT NOT NULL,
    -- private_key_jwt (RFC 7523): the client's public keys, inline JWKS JSON, and/or a URI.
    jwks                  TEXT,
    jwks_uri              TEXT,
    status                TEXT NOT NULL CHECK (status IN ('active', 'disabled')),
    created_at            BIGINT NOT NULL,
    updated_at            BIGINT NOT NULL,
    last_used_at          BIGINT
);
CREATE INDEX oauth_clients_tenant ON oauth_clients (tenant_id);

-- Only digests: the secret is shown once at creation or rotation.
CREATE TABLE oauth_client_secrets (
    id             TEXT PRIMARY KEY,
    client_id      TEXT NOT NULL REFERENCES oauth_clients (id),
    display_prefix TEXT NOT NULL,
    secret_digest  BYTEA NOT NULL,
    created_at     BIGINT NOT NULL,
    -- Set when a newer secret replaces this one: the end of the overlap window.
    expires_at     BIGINT,
    last_used_at   BIGINT
);
CREATE INDEX oauth_client_secrets_client ON oauth_client_secrets (client_id);

-- The durable, ordered revocation log that verifiers follow. seq is assigned under the row lock
-- of revocation_log_head, so entries become visible in seq order (no gaps a reader could skip).
CREATE TABLE revocation_log_head (
    id       BIGINT PRIMARY KEY CHECK (id = 1),
    last_seq BIGINT NOT NULL
);
INSERT INTO revocation_log_head (id, last_seq) VALUES (1, 0);

CREATE TABLE revocations (
    seq            BIGINT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'signing_key')),
    -- The jti, family id, client id, subject, API key id or kid.
    subject        TEXT NOT NULL,
    -- Credentials of this subject issued at or before this time are revoked (NULL: all of
    -- them, or the one credential the subject names).
    revoked_before BIGINT,
    -- After this the entry matters to nobody (every credential it covers has expired).
    expires_at     BIGINT,
    reason         TEXT,
    created_at     BIGINT NOT NULL
);
CREATE INDEX revocations_subject ON revocations (tenant_id, kind, subject);

-- private_key_jwt assertion ids seen, kept until the assertion expires (replay protection).
CREATE TABLE client_assertion_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
