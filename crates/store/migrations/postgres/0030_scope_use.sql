-- Scope use for the hygiene report's "scopes broader than used" (issue 19, item 4), kept in
-- `admission_matches` with three new kinds:
--   `client_scope`      subject = client id, space, scope: a token issued to the client carried
--                       that scope (subject = client id alone: a token with no scope);
--   `api_key_scope`     subject = key id, space, scope: a verification required that scope;
--   `api_key_unscoped`  subject = key id: a verification named no scope (its caller checks
--                       scopes itself), so the key's scope use is unknown.
ALTER TABLE admission_matches DROP CONSTRAINT admission_matches_kind_check;
ALTER TABLE admission_matches ADD CONSTRAINT admission_matches_kind_check
    CHECK (kind IN ('trust_rule', 'redirect_uri', 'client_scope', 'api_key_scope',
                    'api_key_unscoped'));
