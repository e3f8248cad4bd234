-- Scope use and API key networks for the hygiene report (issue 19, item 4: "scopes broader
-- than used", "used from more than one network"), kept in `admission_matches` with four new
-- kinds:
--   `client_scope`      subject = client id, space, scope: a token issued to the client carried
--                       that scope (subject = client id alone: a token with no scope);
--   `api_key_scope`     subject = key id, space, scope: a verification required that scope;
--   `api_key_unscoped`  subject = key id: a verification named no scope (its caller checks
--                       scopes itself), so the key's scope use is unknown;
--   `api_key_network`   subject = key id, space, the first address of the /24 (IPv4) or /64
--                       (IPv6) a verification came from.
-- SQLite cannot alter a CHECK constraint: the table is rebuilt (nothing references it).
CREATE TABLE admission_matches_0030 (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    kind            TEXT NOT NULL CHECK (kind IN ('trust_rule', 'redirect_uri', 'client_scope',
                                                  'api_key_scope', 'api_key_unscoped',
                                                  'api_key_network')),
    subject         TEXT NOT NULL,
    match_count     BIGINT NOT NULL,
    last_matched_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, subject)
);
INSERT INTO admission_matches_0030 (tenant_id, kind, subject, match_count, last_matched_at)
    SELECT tenant_id, kind, subject, match_count, last_matched_at FROM admission_matches;
DROP TABLE admission_matches;
ALTER TABLE admission_matches_0030 RENAME TO admission_matches;
