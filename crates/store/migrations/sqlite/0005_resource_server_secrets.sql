-- Resource-server credentials: a resource server (API) authenticates at the introspection
-- endpoint with a generated secret, stored only as a digest like client secrets. Numbered 0005
-- so it does not collide with the revocation feed's 0004 on another branch; sqlx applies any
-- migration not yet applied, whatever order the branches merge in.
CREATE TABLE resource_server_secrets (
    id                 TEXT PRIMARY KEY,
    resource_server_id TEXT NOT NULL REFERENCES resource_servers (id),
    display_prefix     TEXT NOT NULL,
    secret_digest      BLOB NOT NULL,
    created_at         BIGINT NOT NULL,
    -- Set when a newer secret replaces this one: the end of the overlap window.
    expires_at         BIGINT,
    last_used_at       BIGINT
);
CREATE INDEX resource_server_secrets_server ON resource_server_secrets (resource_server_id);
