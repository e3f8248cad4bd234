-- Admin roles (postgres): besides global and tenant administrators, a credential may be an
-- auditor (reads, audit included), an API key manager, or a service credential (a verifier or
-- gateway: reads the revocation feed and verifies API keys).

ALTER TABLE admin_credentials DROP CONSTRAINT admin_credentials_role_check;
ALTER TABLE admin_credentials ADD CONSTRAINT admin_credentials_role_check
    CHECK (role IN ('global_admin', 'tenant_admin', 'auditor', 'api_key_manager', 'service'));
