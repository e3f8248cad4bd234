-- OpenID Connect Back-Channel Logout 1.0 (issue 16): what a client registers, which clients a
-- session issued tokens to, and the deliveries still to make.
--
-- Existing clients registered no back-channel logout URI: NULL and "no sid required" keep
-- their meaning without a rewrite.
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_uri TEXT;
ALTER TABLE oauth_clients ADD COLUMN backchannel_logout_session_required BIGINT NOT NULL DEFAULT 0;

-- Which clients redeemed a code issued in a session: the clients told when that session ends.
-- No foreign key to the session: a session row is pruned after its absolute deadline, and these
-- rows go with it (the store prunes rows whose session is gone).
CREATE TABLE session_clients (
    tenant_id  TEXT NOT NULL REFERENCES tenants (id),
    sid        TEXT NOT NULL,
    client_id  TEXT NOT NULL,
    first_at   BIGINT NOT NULL,
    PRIMARY KEY (sid, client_id)
);

-- Logout notifications still to deliver, one per (ended session, client). Any node may deliver
-- one: claiming it moves next_attempt_at past a lease, so a node that dies mid-delivery leaves
-- it to be picked up again when the lease ends. Deleted once delivered or given up.
CREATE TABLE backchannel_deliveries (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    client_id       TEXT NOT NULL,
    sid             TEXT NOT NULL,
    user_id         TEXT NOT NULL,
    -- Attempts started so far.
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    -- Why the last attempt failed (a short reason, never a response body).
    last_error      TEXT,
    UNIQUE (sid, client_id)
);
CREATE INDEX backchannel_deliveries_due ON backchannel_deliveries (next_attempt_at);
