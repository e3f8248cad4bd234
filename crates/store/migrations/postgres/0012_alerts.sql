-- Alerts (issue 19): what the detectors raised, one row per rule and subject while it is not
-- resolved. The partial unique index is what deduplicates: a new finding for a live alert adds
-- to its count instead of inserting. Shadow findings (a rule in shadow mode) are stored too,
-- marked, so an operator can measure a rule before turning it on. No foreign key to tenants:
-- a finding may name the system tenant or a tenant deleted since.

CREATE TABLE alerts (
    id              TEXT PRIMARY KEY,
    tenant_id       TEXT NOT NULL,
    rule            TEXT NOT NULL,
    subject         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('open', 'acknowledged', 'resolved')),
    shadow          BIGINT NOT NULL CHECK (shadow IN (0, 1)),
    evidence        TEXT NOT NULL,
    count           BIGINT NOT NULL,
    first_seen      BIGINT NOT NULL,
    last_seen       BIGINT NOT NULL,
    acknowledged_at BIGINT,
    acknowledged_by TEXT,
    resolved_at     BIGINT,
    resolved_by     TEXT
);

CREATE UNIQUE INDEX alerts_live ON alerts (rule, tenant_id, subject, shadow)
    WHERE status <> 'resolved';
CREATE INDEX alerts_tenant_last_seen ON alerts (tenant_id, last_seen);
CREATE INDEX alerts_last_seen ON alerts (last_seen);
