-- Clients for browser and native apps (issue 16): the client type (RFC 6749 section 2.1), the
-- application type (web or native), registered redirect and post-logout redirect URIs, the web
-- origins a single-page app calls the token endpoint from, and whether the client is first
-- party (no consent screen). Lists are space-delimited like the other list columns (the values
-- hold no spaces: the registration rules refuse them).
--
-- Every existing client is a machine client: confidential, web, no URIs, not first party. The
-- defaults say exactly that, so existing rows keep their meaning without a rewrite.

ALTER TABLE oauth_clients ADD COLUMN client_type TEXT NOT NULL DEFAULT 'confidential'
    CHECK (client_type IN ('confidential', 'public'));
ALTER TABLE oauth_clients ADD COLUMN application_type TEXT NOT NULL DEFAULT 'web'
    CHECK (application_type IN ('web', 'native'));
ALTER TABLE oauth_clients ADD COLUMN redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN post_logout_redirect_uris TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN allowed_web_origins TEXT NOT NULL DEFAULT '';
ALTER TABLE oauth_clients ADD COLUMN first_party BIGINT NOT NULL DEFAULT 0;
