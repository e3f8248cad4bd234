-- Credential lifecycle (issue 19, item 4). A tenant's lifetime policy for client secrets, and
-- what happens to existing non-compliant credentials (`ignore`, `report`, `disable`); the API
-- key half of the policy stays in `api_key_policies`. Values are checked by portcullis-core's
-- `lifetime` before they are written.
CREATE TABLE tenant_lifetime_policies (
    tenant_id                     TEXT PRIMARY KEY REFERENCES tenants (id),
    client_secret_max_age_secs    BIGINT,
    client_secret_expiry_required BIGINT NOT NULL CHECK (client_secret_expiry_required IN (0, 1)),
    existing                      TEXT NOT NULL CHECK (existing IN ('ignore', 'report', 'disable')),
    updated_at                    BIGINT NOT NULL
);

-- When something that admits a caller last matched: a trust rule (`trust_rule`, subject = rule
-- id, on each workload exchange it admits) or a redirect URI (`redirect_uri`, subject = client
-- id, space, URI, on each code redemption). Read by the hygiene report ("never matched").
-- Operational history like `alerts`: not exported.
CREATE TABLE admission_matches (
    tenant_id       TEXT NOT NULL REFERENCES tenants (id),
    kind            TEXT NOT NULL CHECK (kind IN ('trust_rule', 'redirect_uri')),
    subject         TEXT NOT NULL,
    match_count     BIGINT NOT NULL,
    last_matched_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, kind, subject)
);
