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
ALTER TABLE admission_matches DROP CONSTRAINT admission_matches_kind_check;
ALTER TABLE admission_matches ADD CONSTRAINT admission_matches_kind_check
    CHECK (kind IN ('trust_rule', 'redirect_uri', 'client_scope', 'api_key_scope',
                    'api_key_unscoped', 'api_key_network'));
