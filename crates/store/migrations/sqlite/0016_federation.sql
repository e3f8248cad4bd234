-- Workload identity federation (issue 17): the external issuers a tenant trusts, its trust
-- rules, and the subject-token ids already exchanged (replay protection).
--
-- A rule belongs to one trusted issuer of its tenant (foreign key): an issuer is removed only
-- once it has no rules. The key source is a kind and its value (a URL, or the uploaded JWKS or
-- SPIFFE bundle as JSON; public keys only). Conditions are the rule's JSON array as core reads
-- it. Subject-token ids are kept per issuer, not per tenant, until the token expires plus the
-- leeway: one external token is exchanged once in the whole installation.

CREATE TABLE trusted_issuers (
    tenant_id        TEXT NOT NULL REFERENCES tenants (id),
    issuer           TEXT NOT NULL,
    preset           TEXT NOT NULL,
    key_source       TEXT NOT NULL
        CHECK (key_source IN ('discovery', 'jwks_uri', 'jwks', 'spiffe_bundle')),
    key_source_value TEXT,
    algorithms       TEXT NOT NULL,
    max_token_age_s  BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, issuer)
);

CREATE TABLE trust_rules (
    tenant_id                 TEXT NOT NULL,
    id                        TEXT NOT NULL,
    issuer                    TEXT NOT NULL,
    audience                  TEXT NOT NULL,
    conditions                TEXT NOT NULL,
    audiences                 TEXT NOT NULL,
    scopes                    TEXT NOT NULL,
    max_lifetime_s            BIGINT NOT NULL,
    max_token_age_s           BIGINT,
    bound_to_subject_lifetime BIGINT NOT NULL CHECK (bound_to_subject_lifetime IN (0, 1)),
    created_at                BIGINT NOT NULL,
    updated_at                BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, issuer) REFERENCES trusted_issuers (tenant_id, issuer)
);
CREATE INDEX trust_rules_issuer ON trust_rules (tenant_id, issuer);

CREATE TABLE subject_token_jtis (
    issuer     TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (issuer, jti)
);
CREATE INDEX subject_token_jtis_expiry ON subject_token_jtis (expires_at);
