-- Users of a tenant (issue 16) (postgres). A username and an email address are unique within a tenant
-- in their normalised form (NFKC + lowercase, computed by the server: core::user), so Alice and
-- alice are one account; another tenant may use the same names. The email is optional (NULLs do
-- not collide in a unique index on either backend).
--
-- password_hash is an Argon2id PHC string: its parameters are part of it, so a change of
-- parameters is seen by comparing the string's with the configured ones (needs_rehash). NULL
-- until the user sets a password (an invited user).
--
-- Sessions and refresh families reference users by id and tenant WITHOUT a foreign key (they are
-- built in parallel, migration 0010): deleting a user revokes them through the service.

CREATE TABLE users (
    id                  TEXT PRIMARY KEY,
    tenant_id           TEXT NOT NULL REFERENCES tenants (id),
    username            TEXT NOT NULL,
    username_normalized TEXT NOT NULL,
    email               TEXT,
    email_normalized    TEXT,
    email_verified      BIGINT NOT NULL DEFAULT 0 CHECK (email_verified IN (0, 1)),
    status              TEXT NOT NULL CHECK (status IN ('invited', 'active', 'disabled')),
    profile             TEXT NOT NULL DEFAULT '{}',
    password_hash       TEXT,
    password_changed_at BIGINT,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    last_login_at       BIGINT
);
CREATE UNIQUE INDEX users_tenant_username ON users (tenant_id, username_normalized);
CREATE UNIQUE INDEX users_tenant_email ON users (tenant_id, email_normalized);
-- Listing pages through a tenant's users by id (ids sort by creation time).
CREATE INDEX users_tenant_id ON users (tenant_id, id);

-- One-time user tokens (invitations, password resets): only the SHA-256 digest of the token is
-- stored. Consuming sets used_at in a single conditional UPDATE, so a token works once.
CREATE TABLE user_tokens (
    digest     BYTEA PRIMARY KEY,
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL CHECK (purpose IN ('invite', 'password_reset')),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX user_tokens_user ON user_tokens (user_id, purpose);
