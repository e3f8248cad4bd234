-- Archived tenants, OAuth clients and resource servers (issue 15 item 8). Archiving is final: the
-- object's row stays (so its id, and a resource server's audience, are never reused) and a row
-- here hides it from lists and from the token service. Nothing deletes from this table.
CREATE TABLE archived_objects (
    kind        TEXT NOT NULL CHECK (kind IN ('tenant', 'client', 'resource_server')),
    id          TEXT NOT NULL,
    tenant_id   TEXT NOT NULL REFERENCES tenants (id),
    archived_at BIGINT NOT NULL,
    -- The admin credential that archived it (NULL: an import or the system).
    archived_by TEXT,
    PRIMARY KEY (kind, id)
);
CREATE INDEX archived_objects_tenant ON archived_objects (tenant_id, kind);
