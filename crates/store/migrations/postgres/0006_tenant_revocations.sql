-- Tenant revocations (postgres): the log may carry `tenant` entries (a tenant was disabled; its
-- tokens issued until then are revoked, and caches drop its API keys).

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'api_key_changed', 'signing_key', 'tenant'));
