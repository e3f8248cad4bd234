-- Device sign-in (RFC 8628 device authorization grant) and admin roles held by users.
--
-- device_authorizations: one row per device authorization request, keyed by the SHA-256 of the
-- device code; the user code is kept only as its SHA-256 too (unique while rows live). Lifecycle:
-- pending -> approved or denied by a signed-in person on the verification page (a
-- compare-and-swap on a pending, unexpired row) -> used when the device's poll gets its tokens
-- (a compare-and-swap on an approved row, so a device code is exchanged once, whichever node
-- answers). Each poll is recorded (last_polled_at, and interval_secs raised by slow_down) by a
-- compare-and-swap on the last poll time, so polling faster through several nodes still slows
-- down. Rows are pruned after they expire; nothing here is worth a backup.

CREATE TABLE device_authorizations (
    device_digest    BLOB PRIMARY KEY,
    user_code_digest BLOB NOT NULL UNIQUE,
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    client_id        TEXT NOT NULL,
    scope            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'used')),
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT NOT NULL,
    interval_secs    BIGINT NOT NULL,
    last_polled_at   BIGINT,
    user_id          TEXT,
    sid              TEXT,
    auth_time        BIGINT,
    decided_at       BIGINT
);
CREATE INDEX device_authorizations_expiry ON device_authorizations (expires_at);

-- An admin role held by a user (the roles of admin credentials, core's AdminRole): what the
-- access tokens the CLI gets by device sign-in may do at the admin API. One role per user.
CREATE TABLE user_admin_roles (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    user_id    TEXT NOT NULL,
    role       TEXT NOT NULL,
    granted_at BIGINT NOT NULL,
    granted_by TEXT NOT NULL,
    PRIMARY KEY (tenant_id, user_id)
);
