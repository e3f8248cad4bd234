-- Revocation feed (postgres): the log may carry `api_key_changed` entries (a key was disabled,
-- enabled, updated or rotated; caches drop it, nothing is denied by it), and every new entry
-- wakes the other nodes.

ALTER TABLE revocations DROP CONSTRAINT revocations_kind_check;
ALTER TABLE revocations ADD CONSTRAINT revocations_kind_check
    CHECK (kind IN ('token', 'family', 'client', 'subject', 'api_key', 'api_key_changed', 'signing_key'));

-- NOTIFY is delivered when the appending transaction commits, so a node woken by it finds the
-- entry visible. The payload is the entry's position; channels are per database, not per
-- schema, so listeners treat it as a hint and read the head from their own schema.
CREATE FUNCTION portcullis_notify_revocation() RETURNS trigger AS $$
BEGIN
    PERFORM pg_notify('portcullis_revocations', NEW.seq::text);
    RETURN NULL;
END;
$$ LANGUAGE plpgsql;

CREATE TRIGGER revocations_notify AFTER INSERT ON revocations
    FOR EACH ROW EXECUTE FUNCTION portcullis_notify_revocation();
