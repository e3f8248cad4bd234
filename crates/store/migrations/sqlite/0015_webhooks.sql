-- Webhooks (issue 19): endpoints that receive the detectors' alerts, and the delivery queue.
--
-- An endpoint belongs to a tenant, or to the installation (tenant 'system', which receives
-- every tenant's alerts). Its signing secret is stored sealed under the KEK (the HMAC needs the
-- plaintext, so a digest will not do), with the id of the KEK that sealed it.
--
-- A delivery is one alert event for one endpoint. Its body is fixed when it is queued, so every
-- attempt signs the same bytes under the same webhook id. A node claims due rows by setting a
-- lease (lease_owner, lease_until); only the lease holder records the outcome, and an expired
-- lease (a node that died mid-attempt) makes the row claimable again. Rows go from 'pending' to
-- 'delivered' or, after the last attempt, 'dead' (the dead-letter list); redelivery moves a dead
-- row back to 'pending'. Deleting an endpoint deletes its deliveries.

CREATE TABLE webhook_endpoints (
    id                TEXT PRIMARY KEY,
    tenant_id         TEXT NOT NULL REFERENCES tenants (id),
    url               TEXT NOT NULL,
    description       TEXT NOT NULL,
    kek_id            TEXT NOT NULL,
    sealed_secret     BLOB NOT NULL,
    created_at        BIGINT NOT NULL,
    secret_rotated_at BIGINT NOT NULL
);

CREATE INDEX webhook_endpoints_tenant ON webhook_endpoints (tenant_id, created_at);

CREATE TABLE webhook_deliveries (
    id              TEXT PRIMARY KEY,
    endpoint_id     TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    endpoint_tenant TEXT NOT NULL,
    tenant_id       TEXT NOT NULL,
    alert_id        TEXT NOT NULL,
    rule            TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    payload         TEXT NOT NULL,
    status          TEXT NOT NULL CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts        BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    last_status     BIGINT,
    created_at      BIGINT NOT NULL,
    finished_at     BIGINT
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (status, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint_tenant ON webhook_deliveries (endpoint_tenant, status, created_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id);
