-- Sign-in state (postgres): sessions, authorization codes, refresh-token families and consents,
-- and `session` entries in the revocation log (a session ended: tokens carrying its `sid` are
-- refused).

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'api_key_changed', 'signing_key', 'tenant', 'session'));
