-- A trust rule may be bound to one client of its tenant: it then authenticates that client
-- (an external workload token as its client_assertion, RFC 7523 section 2.2) and serves no
-- workload grant. NULL: a rule of the workload grants, as before.
ALTER TABLE trust_rules ADD COLUMN client_id TEXT;
