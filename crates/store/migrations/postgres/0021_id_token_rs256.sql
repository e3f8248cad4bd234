-- RS256 ID tokens as OpenID Connect requires (issue 16 item 7): signing keys form two lanes,
-- RS256 and everything else, each with at most one active key. The installation's algorithm
-- signs access tokens and, by default, ID tokens; when it is not RS256, an RS256 companion key
-- in the other lane signs the ID tokens of clients that registered
-- `id_token_signed_response_alg = RS256`. Both lanes rotate together.
--
-- Existing rows need no rewrite: the one active key stays the one active key of its lane.
DROP INDEX signing_keys_one_active;
CREATE UNIQUE INDEX signing_keys_one_active_per_lane ON signing_keys ((algorithm = 'RS256'))
    WHERE state = 'active';

-- A client's ID-token algorithm (OpenID Connect Dynamic Client Registration section 2);
-- NULL: the installation's algorithm.
ALTER TABLE oauth_clients ADD COLUMN id_token_signed_response_alg TEXT;
