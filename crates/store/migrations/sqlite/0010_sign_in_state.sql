-- Sign-in state (sqlite): sessions, authorization codes, refresh-token families and consents,
-- and `session` entries in the revocation log (a session ended: tokens carrying its `sid` are
-- refused).
--
-- SQLite cannot alter a CHECK constraint, so the revocations table is rebuilt with every row and
-- its index. The migration runs in one transaction: a crash leaves the old table untouched.

CREATE TABLE revocations_new (
    seq            BIGINT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    kind           TEXT NOT NULL CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'api_key_changed', 'signing_key', 'tenant', 'session')),
    -- The jti, family id, client id, subject, API key id, kid, tenant id or session id.
    subject        TEXT NOT NULL,
    -- Credentials of this subject issued at or before this time are revoked (NULL: all of
    -- them, or the one credential the subject names).
    revoked_before BIGINT,
    -- After this the entry matters to nobody (every credential it covers has expired).
    expires_at     BIGINT,
    reason         TEXT,
    created_at     BIGINT NOT NULL
);

INSERT INTO revocations_new (seq, tenant_id, kind, subject, revoked_before, expires_at, reason, created_at)
    SELECT seq, tenant_id, kind, subject, revoked_before, expires_at, reason, created_at FROM revocations;

DROP TABLE revocations;
ALTER TABLE revocations_new RENAME TO revocations;
CREATE INDEX revocations_subject ON revocations (tenant_id, kind, subject);
