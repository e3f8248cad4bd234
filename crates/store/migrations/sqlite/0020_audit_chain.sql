-- Tamper-evident audit log (issue 19, item 5): one hash chain per installation.
--
-- Every event written from now on gets the next chain position and the chain hash over the
-- previous hash, its position and its fields (portcullis_core::audit_chain::link). Events
-- written before this migration keep NULL and are reported as unchained by verify.
-- audit_chain_head holds the last position and hash (one row): the audit writer of each node
-- updates it in the transaction that appends its batch, so writers on several nodes take turns
-- and the chain stays one line. audit_checkpoints records the hash at a position, signed by the
-- installation's signing key (a compact JWS, filled in by the service), to catch a rewritten
-- tail and to seed verification after a prune.

ALTER TABLE audit_events ADD COLUMN chain_pos BIGINT;
ALTER TABLE audit_events ADD COLUMN chain_hash BLOB;
CREATE UNIQUE INDEX audit_events_chain_pos ON audit_events (chain_pos);

CREATE TABLE audit_chain_head (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    pos   BIGINT NOT NULL,
    hash  BLOB NOT NULL
);
INSERT INTO audit_chain_head (id, pos, hash) VALUES (1, 0, zeroblob(32));

CREATE TABLE audit_checkpoints (
    pos         BIGINT PRIMARY KEY,
    hash        BLOB NOT NULL,
    created_at  BIGINT NOT NULL,
    kid         TEXT,
    signature   TEXT
);
