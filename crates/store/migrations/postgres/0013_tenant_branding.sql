-- Sign-in page branding per tenant (issue 16): display name, logo URL and accent colour, each
-- optional. Values are checked by the service before they are written (portcullis-core's
-- `branding`).
CREATE TABLE tenant_branding (
    tenant_id     TEXT PRIMARY KEY REFERENCES tenants (id),
    display_name  TEXT,
    logo_url      TEXT,
    accent_colour TEXT,
    updated_at    BIGINT NOT NULL
);
