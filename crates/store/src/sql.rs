//! The one SQL implementation of every storage trait, expanded for each backend.
//!
//! Queries use `$N` placeholders and types both SQLite and PostgreSQL decode alike (TEXT, BIGINT,
//! BLOB/BYTEA, nullable columns), so the same text runs on both. A backend only supplies its pool
//! type and its migrations. Adding a query here adds it to both backends at once, and the
//! conformance suite (`tests/it/conformance.rs`) runs it against both.
//!
//! A backend also names its revocation-head follower (`$follow_head`: what watches for other
//! nodes' appends) and holds a `feed: Arc<HeadFeed>` that appends publish to after they commit.

macro_rules! impl_sql_store {
    ($store:ty, $row:ty, $backend:literal, $follow_head:path) => {
        use $crate::model::*;
        use $crate::page::*;
        use $crate::{Result, StoreError};
        use portcullis_core::admin::AdminRole;
        use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome, Reason};
        use portcullis_core::revocation::Candidate;
        use portcullis_core::signing::{KeyState, SigningAlgorithm};
        use portcullis_core::tenant::{TenantId, TenantStatus};
        use portcullis_core::time::Timestamp;
        use sqlx::Row as _;

        fn corrupt(what: &str, value: &str) -> StoreError {
            StoreError::Corrupt(format!("{what}: {value:?}"))
        }

        fn ts(ms: Option<i64>) -> Option<Timestamp> {
            ms.map(Timestamp::from_millis)
        }

        fn tenant_id(s: String) -> Result<TenantId> {
            TenantId::parse(&s).map_err(|_| corrupt("tenant id", &s))
        }

        /// The one keyset-pagination rule in SQL (see `page.rs`): appends to a query whose
        /// `WHERE` clause is open the condition "strictly after `page.after` in the list's
        /// order", the order itself (`at`, then `id`; descending for newest-first lists) and a
        /// limit of one row more than the page holds, which [`Page::from_rows`] uses to tell
        /// whether another page follows. Never `OFFSET`: a row inserted meanwhile shifts nothing.
        fn push_keyset(
            q: &mut sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database>,
            page: &PageRequest,
            at: &str,
            id: &str,
            newest_first: bool,
        ) {
            let (cmp, dir) = if newest_first { ("<", "DESC") } else { (">", "ASC") };
            if let Some(key) = &page.after {
                let at_ms = key.at.as_millis();
                q.push(format!(" AND ({at} {cmp} ")).push_bind(at_ms);
                q.push(format!(" OR ({at} = ")).push_bind(at_ms);
                q.push(format!(" AND {id} {cmp} "));
                match &key.id {
                    KeyId::Text(t) => q.push_bind(t.clone()),
                    KeyId::Int(n) => q.push_bind(*n),
                };
                q.push("))");
            }
            q.push(format!(" ORDER BY {at} {dir}, {id} {dir} LIMIT "))
                .push_bind(i64::from(page.effective_limit()) + 1);
        }

        /// The key of a row ordered by `(created_at, id)`.
        fn created_key(at: Timestamp, id: &str) -> PageKey {
            PageKey {
                at,
                id: KeyId::Text(id.to_owned()),
            }
        }

        /// `FROM table t LEFT JOIN archived_objects a ... WHERE` for an archivable list, with
        /// archived rows left out unless `archived` includes them. Ends inside the `WHERE`.
        fn archivable_select(
            table: &str,
            kind: ArchivedKind,
            archived: ArchivedFilter,
        ) -> sqlx::QueryBuilder<'static, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(format!(
                "SELECT t.*, a.archived_at AS archived_at FROM {table} t \
                 LEFT JOIN archived_objects a ON a.kind = '{}' AND a.id = t.id WHERE 1 = 1",
                kind.as_str()
            ));
            if archived == ArchivedFilter::Exclude {
                q.push(" AND a.id IS NULL");
            }
            q
        }

        fn archivable<T>(row: &$row, item: T) -> Result<Archivable<T>> {
            Ok(Archivable {
                item,
                archived_at: ts(row.try_get("archived_at")?),
            })
        }

        fn tenant_from_row(row: &$row) -> Result<Tenant> {
            let status: String = row.try_get("status")?;
            Ok(Tenant {
                id: tenant_id(row.try_get("id")?)?,
                display_name: row.try_get("display_name")?,
                status: TenantStatus::parse(&status).ok_or_else(|| corrupt("tenant status", &status))?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        fn signing_key_from_row(row: &$row) -> Result<StoredSigningKey> {
            let alg: String = row.try_get("algorithm")?;
            let state: String = row.try_get("state")?;
            Ok(StoredSigningKey {
                kid: row.try_get("kid")?,
                algorithm: SigningAlgorithm::parse(&alg).ok_or_else(|| corrupt("algorithm", &alg))?,
                state: KeyState::parse(&state).ok_or_else(|| corrupt("key state", &state))?,
                public_jwk: row.try_get("public_jwk")?,
                kek_id: row.try_get("kek_id")?,
                sealed_private_key: row.try_get("sealed_private_key")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                activates_at: Timestamp::from_millis(row.try_get("activates_at")?),
                retired_at: ts(row.try_get("retired_at")?),
                publish_until: ts(row.try_get("publish_until")?),
            })
        }

        fn admin_credential_from_row(row: &$row) -> Result<AdminCredentialRecord> {
            let role: String = row.try_get("role")?;
            Ok(AdminCredentialRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                role: AdminRole::parse(&role).ok_or_else(|| corrupt("admin role", &role))?,
                name: row.try_get("name")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                created_by: row.try_get("created_by")?,
                revoked_at: ts(row.try_get("revoked_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        fn api_key_from_row(row: &$row) -> Result<ApiKeyRecord> {
            Ok(ApiKeyRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                environment: row.try_get("environment")?,
                name: row.try_get("name")?,
                description: row.try_get("description")?,
                owner: row.try_get("owner")?,
                scopes: row.try_get("scopes")?,
                audiences: row.try_get("audiences")?,
                ip_allowlist: row.try_get("ip_allowlist")?,
                rate_limit_requests: row.try_get("rate_limit_requests")?,
                rate_limit_window_secs: row.try_get("rate_limit_window_secs")?,
                metadata: row.try_get("metadata")?,
                display_prefix: row.try_get("display_prefix")?,
                digest: row.try_get("digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                created_by: row.try_get("created_by")?,
                expires_at: ts(row.try_get("expires_at")?),
                disabled_at: ts(row.try_get("disabled_at")?),
                revoked_at: ts(row.try_get("revoked_at")?),
                revoked_reason: row.try_get("revoked_reason")?,
                replaced_by: row.try_get("replaced_by")?,
                rotation_overlap_ends_at: ts(row.try_get("rotation_overlap_ends_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
                last_used_ip: row.try_get("last_used_ip")?,
            })
        }

        async fn insert_api_key_with<'e, E>(executor: E, k: &ApiKeyRecord) -> Result<()>
        where
            E: sqlx::Executor<'e, Database = <$row as sqlx::Row>::Database>,
        {
            api_key_insert(std::slice::from_ref(k))
                .build()
                .execute(executor)
                .await
                .map_err(StoreError::from_write)?;
            Ok(())
        }

        /// One `INSERT INTO api_keys` for `keys`: the single place that lists the columns, used
        /// by single inserts, rotations and batch inserts alike.
        fn api_key_insert(
            keys: &[ApiKeyRecord],
        ) -> sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO api_keys (id, tenant_id, environment, name, description, owner, \
                 scopes, audiences, ip_allowlist, rate_limit_requests, rate_limit_window_secs, \
                 metadata, display_prefix, digest, created_at, created_by, expires_at, \
                 disabled_at, revoked_at, revoked_reason, replaced_by, rotation_overlap_ends_at, \
                 last_used_at, last_used_ip) ",
            );
            q.push_values(keys, |mut b, k| {
                b.push_bind(&k.id)
                    .push_bind(k.tenant.as_str())
                    .push_bind(&k.environment)
                    .push_bind(&k.name)
                    .push_bind(&k.description)
                    .push_bind(&k.owner)
                    .push_bind(&k.scopes)
                    .push_bind(&k.audiences)
                    .push_bind(&k.ip_allowlist)
                    .push_bind(k.rate_limit_requests)
                    .push_bind(k.rate_limit_window_secs)
                    .push_bind(&k.metadata)
                    .push_bind(&k.display_prefix)
                    .push_bind(&k.digest)
                    .push_bind(k.created_at.as_millis())
                    .push_bind(&k.created_by)
                    .push_bind(k.expires_at.map(Timestamp::as_millis))
                    .push_bind(k.disabled_at.map(Timestamp::as_millis))
                    .push_bind(k.revoked_at.map(Timestamp::as_millis))
                    .push_bind(&k.revoked_reason)
                    .push_bind(&k.replaced_by)
                    .push_bind(k.rotation_overlap_ends_at.map(Timestamp::as_millis))
                    .push_bind(k.last_used_at.map(Timestamp::as_millis))
                    .push_bind(&k.last_used_ip);
            });
            q
        }

        fn audit_event_from_row(row: &$row) -> Result<AuditEvent> {
            let outcome: String = row.try_get("outcome")?;
            Ok(AuditEvent {
                id: row.try_get("id")?,
                occurred_at: Timestamp::from_millis(row.try_get("occurred_at")?),
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                actor: Actor::from_stored(row.try_get("actor")?),
                credential_id: row.try_get("credential_id")?,
                client_ip: row.try_get("client_ip")?,
                user_agent: row.try_get("user_agent")?,
                action: Action::parse(row.try_get("action")?),
                outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
                reason: row
                    .try_get::<Option<String>, _>("reason")?
                    .map(Reason::from_stored),
                request_id: row.try_get("request_id")?,
                target: row.try_get("target")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::TenantStore for $store {
            async fn create_tenant(&self, t: &NewTenant, now: Timestamp) -> Result<Tenant> {
                sqlx::query(
                    "INSERT INTO tenants (id, display_name, status, created_at, updated_at) \
                     VALUES ($1, $2, 'active', $3, $3)",
                )
                .bind(t.id.as_str())
                .bind(&t.display_name)
                .bind(now.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(Tenant {
                    id: t.id.clone(),
                    display_name: t.display_name.clone(),
                    status: TenantStatus::Active,
                    created_at: now,
                    updated_at: now,
                })
            }

            async fn get_tenant(&self, id: &TenantId) -> Result<Option<Tenant>> {
                sqlx::query("SELECT * FROM tenants WHERE id = $1")
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(tenant_from_row)
                    .transpose()
            }

            async fn list_tenants(
                &self,
                page: &PageRequest,
                archived: ArchivedFilter,
            ) -> Result<Page<Archivable<Tenant>>> {
                let mut q = archivable_select("tenants", ArchivedKind::Tenant, archived);
                push_keyset(&mut q, page, "t.created_at", "t.id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| archivable(r, tenant_from_row(r)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |t| {
                    created_key(t.item.created_at, t.item.id.as_str())
                }))
            }

            async fn set_tenant_status(
                &self,
                id: &TenantId,
                status: TenantStatus,
                now: Timestamp,
            ) -> Result<Tenant> {
                sqlx::query(
                    "UPDATE tenants SET status = $1, updated_at = $2 WHERE id = $3 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'tenant' AND a.id = tenants.id) \
                     RETURNING *",
                )
                .bind(status.as_str())
                .bind(now.as_millis())
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(tenant_from_row)
                .transpose()?
                .ok_or(StoreError::NotFound)
            }
        }

        #[async_trait::async_trait]
        impl $crate::SigningKeyStore for $store {
            async fn page_signing_keys(&self, page: &PageRequest) -> Result<Page<StoredSigningKey>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM signing_keys WHERE 1 = 1");
                push_keyset(&mut q, page, "created_at", "kid", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(signing_key_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |k| created_key(k.created_at, &k.kid)))
            }

            async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
                sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(signing_key_from_row)
                    .collect()
            }

            async fn insert_signing_key(&self, k: &StoredSigningKey) -> Result<bool> {
                let result = sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, state, public_jwk, kek_id, \
                     sealed_private_key, created_at, activates_at, retired_at, publish_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&k.kid)
                .bind(k.algorithm.as_str())
                .bind(k.state.as_str())
                .bind(&k.public_jwk)
                .bind(&k.kek_id)
                .bind(&k.sealed_private_key)
                .bind(k.created_at.as_millis())
                .bind(k.activates_at.as_millis())
                .bind(k.retired_at.map(Timestamp::as_millis))
                .bind(k.publish_until.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await;
                match result.map_err(StoreError::from_write) {
                    Ok(_) => Ok(true),
                    // Either the kid collided (practically impossible with random ids) or
                    // another node inserted the one active key first: nothing changed.
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e),
                }
            }

            async fn reseal_signing_key(
                &self,
                kid: &str,
                expected_kek_id: &str,
                new_kek_id: &str,
                sealed: &[u8],
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET kek_id = $1, sealed_private_key = $2 \
                     WHERE kid = $3 AND kek_id = $4",
                )
                .bind(new_kek_id)
                .bind(sealed)
                .bind(kid)
                .bind(expected_kek_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn activate_signing_key(
                &self,
                kid: &str,
                now: Timestamp,
                retired_publish_until: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Retire first: the unique index allows one active key at any instant.
                sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1, \
                     publish_until = $2 WHERE state = 'active'",
                )
                .bind(now.as_millis())
                .bind(retired_publish_until.as_millis())
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activates_at = $1 \
                     WHERE kid = $2 AND state = 'pending'",
                )
                .bind(now.as_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_signing_key(
                &self,
                kid: &str,
                now: Timestamp,
            ) -> Result<Option<KeyState>> {
                let mut tx = self.pool.begin().await?;
                let before: Option<String> = sqlx::query_scalar(
                    "UPDATE signing_keys SET publish_until = $1 \
                     WHERE kid = $2 AND state <> 'revoked' RETURNING state",
                )
                .bind(now.as_millis())
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(before) = before else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let before = KeyState::parse(&before).ok_or_else(|| corrupt("key state", &before))?;
                sqlx::query(
                    "UPDATE signing_keys SET state = 'revoked', \
                     retired_at = COALESCE(retired_at, $1) WHERE kid = $2",
                )
                .bind(now.as_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(before))
            }
        }

        #[async_trait::async_trait]
        impl $crate::AdminCredentialStore for $store {
            async fn insert_admin_credential(&self, c: &AdminCredentialRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO admin_credentials (id, tenant_id, role, name, display_prefix, \
                     secret_digest, created_at, created_by, revoked_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&c.id)
                .bind(c.tenant.as_str())
                .bind(c.role.as_str())
                .bind(&c.name)
                .bind(&c.display_prefix)
                .bind(&c.secret_digest)
                .bind(c.created_at.as_millis())
                .bind(&c.created_by)
                .bind(c.revoked_at.map(Timestamp::as_millis))
                .bind(c.last_used_at.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_admin_credential(&self, id: &str) -> Result<Option<AdminCredentialRecord>> {
                sqlx::query("SELECT * FROM admin_credentials WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(admin_credential_from_row)
                    .transpose()
            }

            async fn list_admin_credentials(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
            ) -> Result<Page<AdminCredentialRecord>> {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT * FROM admin_credentials WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "created_at", "id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(admin_credential_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |c| created_key(c.created_at, &c.id)))
            }

            async fn revoke_admin_credential(
                &self,
                tenant: &TenantId,
                id: &str,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE admin_credentials SET revoked_at = $1 \
                     WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
                )
                .bind(now.as_millis())
                .bind(id)
                .bind(tenant.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn count_active_global_admins(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM admin_credentials \
                     WHERE role = 'global_admin' AND revoked_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn touch_admin_credential(&self, id: &str, now: Timestamp) -> Result<()> {
                sqlx::query(
                    "UPDATE admin_credentials SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<()> {
                // Multi-row statements rather than one per event, so a busy endpoint costs the
                // database one round trip per few dozen events. Only three statement shapes (64,
                // 8 and 1 rows) are used, so each stays prepared in the connection's cache; a
                // shape per batch size cached tens of megabytes of statements.
                const SHAPES: [usize; 3] = [64, 8, 1];
                if events.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                let mut rest = events;
                for rows in SHAPES {
                    while rest.len() >= rows {
                        let (chunk, tail) = rest.split_at(rows);
                        rest = tail;
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO audit_events (id, occurred_at, tenant_id, actor, \
                             credential_id, client_ip, user_agent, action, outcome, reason, \
                             request_id, target) ",
                        );
                        q.push_values(chunk, |mut b, e| {
                            b.push_bind(&e.id)
                                .push_bind(e.occurred_at.as_millis())
                                .push_bind(e.tenant.as_str())
                                .push_bind(e.actor.as_str())
                                .push_bind(&e.credential_id)
                                .push_bind(&e.client_ip)
                                .push_bind(&e.user_agent)
                                .push_bind(e.action.as_str())
                                .push_bind(e.outcome.as_str())
                                .push_bind(e.reason.as_ref().map(Reason::as_str))
                                .push_bind(&e.request_id)
                                .push_bind(&e.target);
                        });
                        q.push(" ON CONFLICT (id) DO NOTHING");
                        q.build().execute(&mut *tx).await?;
                    }
                }
                tx.commit().await?;
                Ok(())
            }

            async fn query_audit_events(&self, q: &AuditQuery) -> Result<Page<AuditEvent>> {
                let mut b = sqlx::QueryBuilder::new("SELECT * FROM audit_events WHERE tenant_id = ");
                b.push_bind(q.tenant.as_str().to_owned());
                if let Some(since) = q.since {
                    b.push(" AND occurred_at >= ").push_bind(since.as_millis());
                }
                if let Some(until) = q.until {
                    b.push(" AND occurred_at < ").push_bind(until.as_millis());
                }
                if let Some(action) = &q.action {
                    b.push(" AND action = ").push_bind(action.clone());
                }
                // Newest first; `seq` (the insertion order) breaks ties within a millisecond.
                push_keyset(&mut b, &q.page, "occurred_at", "seq", true);
                let rows = b
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok((audit_event_from_row(r)?, r.try_get::<i64, _>("seq")?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, &q.page, |(e, seq)| PageKey {
                    at: e.occurred_at,
                    id: KeyId::Int(*seq),
                })
                .map(|(e, _)| e))
            }
        }

        fn alert_from_row(row: &$row) -> Result<AlertRecord> {
            let status: String = row.try_get("status")?;
            let shadow: i64 = row.try_get("shadow")?;
            Ok(AlertRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                rule: row.try_get("rule")?,
                subject: row.try_get("subject")?,
                status: portcullis_core::alert::AlertStatus::parse(&status)
                    .ok_or_else(|| corrupt("alert status", &status))?,
                shadow: shadow != 0,
                evidence: row.try_get("evidence")?,
                count: row.try_get("count")?,
                first_seen: Timestamp::from_millis(row.try_get("first_seen")?),
                last_seen: Timestamp::from_millis(row.try_get("last_seen")?),
                acknowledged_at: ts(row.try_get("acknowledged_at")?),
                acknowledged_by: row.try_get("acknowledged_by")?,
                resolved_at: ts(row.try_get("resolved_at")?),
                resolved_by: row.try_get("resolved_by")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::AlertStore for $store {
            async fn upsert_alert(&self, a: &AlertUpsert) -> Result<AlertRecord> {
                // The conflict target names the partial unique index `alerts_live`, so a
                // resolved alert never absorbs a new finding.
                sqlx::query(
                    "INSERT INTO alerts (id, tenant_id, rule, subject, status, shadow, evidence, \
                     count, first_seen, last_seen) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $8) \
                     ON CONFLICT (rule, tenant_id, subject, shadow) WHERE status <> 'resolved' \
                     DO UPDATE SET count = alerts.count + excluded.count, \
                     evidence = excluded.evidence, \
                     last_seen = CASE WHEN excluded.last_seen > alerts.last_seen \
                     THEN excluded.last_seen ELSE alerts.last_seen END \
                     RETURNING *",
                )
                .bind(&a.id)
                .bind(a.tenant.as_str())
                .bind(&a.rule)
                .bind(&a.subject)
                .bind(i64::from(a.shadow))
                .bind(&a.evidence)
                .bind(a.count.max(1))
                .bind(a.seen_at.as_millis())
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::from)
                .and_then(|row| alert_from_row(&row))
            }

            async fn list_alerts(
                &self,
                f: &AlertFilter,
                page: &PageRequest,
            ) -> Result<Page<AlertRecord>> {
                // Ordered by when an alert was opened (which never changes, unlike `last_seen`),
                // so a page boundary holds while findings keep updating alerts.
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM alerts WHERE 1 = 1");
                if let Some(tenant) = &f.tenant {
                    q.push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                }
                if let Some(status) = f.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(rule) = &f.rule {
                    q.push(" AND rule = ").push_bind(rule.clone());
                }
                push_keyset(&mut q, page, "first_seen", "id", true);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(alert_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |a| created_key(a.first_seen, &a.id)))
            }

            async fn get_alert(&self, tenant: Option<&TenantId>, id: &str) -> Result<Option<AlertRecord>> {
                sqlx::query("SELECT * FROM alerts WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                    .bind(id)
                    .bind(tenant.map(TenantId::as_str))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(alert_from_row)
                    .transpose()
            }

            async fn set_alert_status(
                &self,
                tenant: Option<&TenantId>,
                id: &str,
                from: portcullis_core::alert::AlertStatus,
                to: portcullis_core::alert::AlertStatus,
                by: &str,
                now: Timestamp,
            ) -> Result<bool> {
                use portcullis_core::alert::AlertStatus;
                let (ack_at, ack_by, res_at, res_by) = match to {
                    AlertStatus::Acknowledged => (Some(now.as_millis()), Some(by), None, None),
                    AlertStatus::Resolved => (None, None, Some(now.as_millis()), Some(by)),
                    AlertStatus::Open => (None, None, None, None),
                };
                let done = sqlx::query(
                    "UPDATE alerts SET status = $1, \
                     acknowledged_at = COALESCE($2, acknowledged_at), \
                     acknowledged_by = COALESCE($3, acknowledged_by), \
                     resolved_at = COALESCE($4, resolved_at), \
                     resolved_by = COALESCE($5, resolved_by) \
                     WHERE id = $6 AND status = $7 AND ($8 IS NULL OR tenant_id = $8)",
                )
                .bind(to.as_str())
                .bind(ack_at)
                .bind(ack_by)
                .bind(res_at)
                .bind(res_by)
                .bind(id)
                .bind(from.as_str())
                .bind(tenant.map(TenantId::as_str))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

        fn list_col(s: String) -> Vec<String> {
            s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned).collect()
        }

        fn resource_server_from_row(row: &$row) -> Result<ResourceServer> {
            Ok(ResourceServer {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                name: row.try_get("name")?,
                audience: row.try_get("audience")?,
                scopes: list_col(row.try_get("scopes")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        fn client_from_row(row: &$row) -> Result<OAuthClient> {
            let status: String = row.try_get("status")?;
            let introspect: i64 = row.try_get("can_introspect")?;
            let client_type: String = row.try_get("client_type")?;
            let application_type: String = row.try_get("application_type")?;
            let first_party: i64 = row.try_get("first_party")?;
            let bcl_sid: i64 = row.try_get("backchannel_logout_session_required")?;
            Ok(OAuthClient {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                name: row.try_get("name")?,
                environment: row.try_get("environment")?,
                auth_method: row.try_get("auth_method")?,
                grant_types: list_col(row.try_get("grant_types")?),
                scopes: list_col(row.try_get("scopes")?),
                audiences: list_col(row.try_get("audiences")?),
                access_token_ttl_secs: row.try_get("access_token_ttl_secs")?,
                can_introspect: introspect != 0,
                jwks: row.try_get("jwks")?,
                jwks_uri: row.try_get("jwks_uri")?,
                status: ClientStatus::parse(&status).ok_or_else(|| corrupt("client status", &status))?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
                client_type: ClientType::parse(&client_type)
                    .ok_or_else(|| corrupt("client type", &client_type))?,
                application_type: ApplicationType::parse(&application_type)
                    .ok_or_else(|| corrupt("application type", &application_type))?,
                redirect_uris: list_col(row.try_get("redirect_uris")?),
                post_logout_redirect_uris: list_col(row.try_get("post_logout_redirect_uris")?),
                allowed_web_origins: list_col(row.try_get("allowed_web_origins")?),
                first_party: first_party != 0,
                backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
                backchannel_logout_session_required: bcl_sid != 0,
            })
        }

        fn client_secret_from_row(row: &$row) -> Result<ClientSecretRecord> {
            Ok(ClientSecretRecord {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: ts(row.try_get("expires_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        fn resource_server_secret_from_row(row: &$row) -> Result<ResourceServerSecretRecord> {
            Ok(ResourceServerSecretRecord {
                id: row.try_get("id")?,
                resource_server_id: row.try_get("resource_server_id")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: ts(row.try_get("expires_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        fn revocation_from_row(row: &$row) -> Result<RevocationEntry> {
            let kind: String = row.try_get("kind")?;
            Ok(RevocationEntry {
                seq: row.try_get("seq")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                kind: RevocationKind::parse(&kind).ok_or_else(|| corrupt("revocation kind", &kind))?,
                subject: row.try_get("subject")?,
                revoked_before: ts(row.try_get("revoked_before")?),
                expires_at: ts(row.try_get("expires_at")?),
                reason: row.try_get("reason")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
            })
        }

        type Db = <$row as sqlx::Row>::Database;

        /// Appends one entry inside `tx`. The head row's lock is held until `tx` ends, so the
        /// next writer gets the next number only after this entry is visible (or rolled back).
        async fn append_revocation_in(
            tx: &mut sqlx::Transaction<'_, Db>,
            r: &NewRevocation,
            now: Timestamp,
        ) -> Result<RevocationEntry> {
            let seq: i64 = sqlx::query_scalar(
                "UPDATE revocation_log_head SET last_seq = last_seq + 1 WHERE id = 1 \
                 RETURNING last_seq",
            )
            .fetch_one(&mut **tx)
            .await?;
            sqlx::query(
                "INSERT INTO revocations (seq, tenant_id, kind, subject, revoked_before, \
                 expires_at, reason, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            )
            .bind(seq)
            .bind(r.tenant.as_str())
            .bind(r.kind.as_str())
            .bind(&r.subject)
            .bind(r.revoked_before.map(Timestamp::as_millis))
            .bind(r.expires_at.map(Timestamp::as_millis))
            .bind(&r.reason)
            .bind(now.as_millis())
            .execute(&mut **tx)
            .await?;
            Ok(RevocationEntry {
                seq,
                tenant: r.tenant.clone(),
                kind: r.kind,
                subject: r.subject.clone(),
                revoked_before: r.revoked_before,
                expires_at: r.expires_at,
                reason: r.reason.clone(),
                created_at: now,
            })
        }

        /// The committed head of the revocation log.
        async fn read_revocation_head(pool: &sqlx::Pool<Db>) -> std::result::Result<i64, sqlx::Error> {
            sqlx::query_scalar("SELECT last_seq FROM revocation_log_head WHERE id = 1")
                .fetch_one(pool)
                .await
        }

        /// A log entry for API key `id` of `tenant`. It matters until the key can no longer
        /// work anyway: its expiry or the end of its rotation window, whichever comes first.
        fn api_key_entry(
            tenant: &TenantId,
            id: String,
            kind: RevocationKind,
            reason: &str,
            expires_at: Option<i64>,
            overlap_ends_at: Option<i64>,
        ) -> NewRevocation {
            let bound = match (expires_at, overlap_ends_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            NewRevocation {
                tenant: tenant.clone(),
                kind,
                subject: id,
                revoked_before: None,
                expires_at: bound.map(Timestamp::from_millis),
                reason: Some(reason.to_owned()),
            }
        }

        /// Runs an API key `UPDATE ... RETURNING id, expires_at, rotation_overlap_ends_at` and,
        /// in the same transaction, appends one `kind` entry per changed key. Returns the ids
        /// changed, sorted.
        async fn change_api_keys_logged<'q>(
            store: &$store,
            update: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
            tenant: &TenantId,
            kind: RevocationKind,
            reason: &str,
            now: Timestamp,
        ) -> Result<Vec<String>> {
            let mut tx = store.pool.begin().await?;
            let rows = update.fetch_all(&mut *tx).await?;
            let mut changed = rows
                .iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>("id")?,
                        row.try_get::<Option<i64>, _>("expires_at")?,
                        row.try_get::<Option<i64>, _>("rotation_overlap_ends_at")?,
                    ))
                })
                .collect::<Result<Vec<_>>>()?;
            changed.sort();
            let mut head = None;
            for (id, expires_at, overlap) in &changed {
                let entry = api_key_entry(tenant, id.clone(), kind, reason, *expires_at, *overlap);
                head = Some(append_revocation_in(&mut tx, &entry, now).await?.seq);
            }
            tx.commit().await?;
            if let Some(seq) = head {
                store.feed.publish(seq);
            }
            Ok(changed.into_iter().map(|(id, _, _)| id).collect())
        }

        #[async_trait::async_trait]
        impl $crate::ResourceServerStore for $store {
            async fn create_resource_server(&self, rs: &ResourceServer) -> Result<()> {
                sqlx::query(
                    "INSERT INTO resource_servers (id, tenant_id, name, audience, scopes, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&rs.id)
                .bind(rs.tenant.as_str())
                .bind(&rs.name)
                .bind(&rs.audience)
                .bind(rs.scopes.join(" "))
                .bind(rs.created_at.as_millis())
                .bind(rs.updated_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_resource_server(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<ResourceServer>> {
                sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(resource_server_from_row)
                    .transpose()
            }

            async fn find_resource_server_by_audience(
                &self,
                tenant: &TenantId,
                audience: &str,
            ) -> Result<Option<ResourceServer>> {
                sqlx::query(
                    "SELECT * FROM resource_servers WHERE tenant_id = $1 AND audience = $2 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'resource_server' AND a.id = resource_servers.id)",
                )
                .bind(tenant.as_str())
                .bind(audience)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(resource_server_from_row)
                .transpose()
            }

            async fn list_resource_servers(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
                archived: ArchivedFilter,
            ) -> Result<Page<Archivable<ResourceServer>>> {
                let mut q =
                    archivable_select("resource_servers", ArchivedKind::ResourceServer, archived);
                q.push(" AND t.tenant_id = ").push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "t.created_at", "t.id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| archivable(r, resource_server_from_row(r)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |rs| {
                    created_key(rs.item.created_at, &rs.item.id)
                }))
            }

            async fn find_resource_server(&self, id: &str) -> Result<Option<ResourceServer>> {
                sqlx::query(
                    "SELECT * FROM resource_servers WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'resource_server' AND a.id = resource_servers.id)",
                )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(resource_server_from_row)
                    .transpose()
            }

            async fn rotate_resource_server_secret(
                &self,
                tenant: &TenantId,
                s: &ResourceServerSecretRecord,
                old_expires_at: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Touching the resource server's row first serialises concurrent rotations.
                let found = sqlx::query(
                    "UPDATE resource_servers SET updated_at = $1 WHERE id = $2 AND tenant_id = $3 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'resource_server' AND a.id = resource_servers.id)",
                )
                .bind(s.created_at.as_millis())
                .bind(&s.resource_server_id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
                if found.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE resource_server_secrets SET expires_at = $1 \
                     WHERE resource_server_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                )
                .bind(old_expires_at.as_millis())
                .bind(&s.resource_server_id)
                .execute(&mut *tx)
                .await?;
                sqlx::query(
                    "INSERT INTO resource_server_secrets (id, resource_server_id, display_prefix, \
                     secret_digest, created_at, expires_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id)
                .bind(&s.resource_server_id)
                .bind(&s.display_prefix)
                .bind(&s.secret_digest)
                .bind(s.created_at.as_millis())
                .bind(s.expires_at.map(Timestamp::as_millis))
                .bind(s.last_used_at.map(Timestamp::as_millis))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                tx.commit().await?;
                Ok(true)
            }

            async fn list_resource_server_secrets(
                &self,
                resource_server_id: &str,
            ) -> Result<Vec<ResourceServerSecretRecord>> {
                sqlx::query(
                    "SELECT * FROM resource_server_secrets WHERE resource_server_id = $1 \
                     ORDER BY created_at DESC, id",
                )
                .bind(resource_server_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(resource_server_secret_from_row)
                .collect()
            }

            async fn touch_resource_server_secret(&self, secret_id: &str, now: Timestamp) -> Result<()> {
                sqlx::query(
                    "UPDATE resource_server_secrets SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(secret_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::ClientStore for $store {
            async fn create_client(
                &self,
                c: &OAuthClient,
                secret: Option<&ClientSecretRecord>,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO oauth_clients (id, tenant_id, name, environment, auth_method, \
                     grant_types, scopes, audiences, access_token_ttl_secs, can_introspect, \
                     jwks, jwks_uri, status, created_at, updated_at, last_used_at, \
                     client_type, application_type, redirect_uris, post_logout_redirect_uris, \
                     allowed_web_origins, first_party, backchannel_logout_uri, \
                     backchannel_logout_session_required) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, $22, $23, $24)",
                )
                .bind(&c.id)
                .bind(c.tenant.as_str())
                .bind(&c.name)
                .bind(&c.environment)
                .bind(&c.auth_method)
                .bind(c.grant_types.join(" "))
                .bind(c.scopes.join(" "))
                .bind(c.audiences.join(" "))
                .bind(c.access_token_ttl_secs)
                .bind(i64::from(c.can_introspect))
                .bind(&c.jwks)
                .bind(&c.jwks_uri)
                .bind(c.status.as_str())
                .bind(c.created_at.as_millis())
                .bind(c.updated_at.as_millis())
                .bind(c.last_used_at.map(Timestamp::as_millis))
                .bind(c.client_type.as_str())
                .bind(c.application_type.as_str())
                .bind(c.redirect_uris.join(" "))
                .bind(c.post_logout_redirect_uris.join(" "))
                .bind(c.allowed_web_origins.join(" "))
                .bind(i64::from(c.first_party))
                .bind(&c.backchannel_logout_uri)
                .bind(i64::from(c.backchannel_logout_session_required))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                if let Some(s) = secret {
                    insert_client_secret(&mut tx, s).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_client(&self, id: &str) -> Result<Option<OAuthClient>> {
                sqlx::query("SELECT * FROM oauth_clients WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(client_from_row)
                    .transpose()
            }

            async fn list_clients(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
                archived: ArchivedFilter,
            ) -> Result<Page<Archivable<OAuthClient>>> {
                let mut q = archivable_select("oauth_clients", ArchivedKind::Client, archived);
                q.push(" AND t.tenant_id = ").push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "t.created_at", "t.id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| archivable(r, client_from_row(r)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |c| {
                    created_key(c.item.created_at, &c.item.id)
                }))
            }

            async fn update_client(&self, c: &OAuthClient, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_clients SET name = $1, grant_types = $2, scopes = $3, \
                     audiences = $4, access_token_ttl_secs = $5, can_introspect = $6, \
                     redirect_uris = $7, post_logout_redirect_uris = $8, \
                     allowed_web_origins = $9, first_party = $10, updated_at = $11, \
                     backchannel_logout_uri = $14, backchannel_logout_session_required = $15 \
                     WHERE tenant_id = $12 AND id = $13",
                )
                .bind(&c.name)
                .bind(c.grant_types.join(" "))
                .bind(c.scopes.join(" "))
                .bind(c.audiences.join(" "))
                .bind(c.access_token_ttl_secs)
                .bind(i64::from(c.can_introspect))
                .bind(c.redirect_uris.join(" "))
                .bind(c.post_logout_redirect_uris.join(" "))
                .bind(c.allowed_web_origins.join(" "))
                .bind(i64::from(c.first_party))
                .bind(now.as_millis())
                .bind(c.tenant.as_str())
                .bind(&c.id)
                .bind(&c.backchannel_logout_uri)
                .bind(i64::from(c.backchannel_logout_session_required))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_client_status(
                &self,
                tenant: &TenantId,
                id: &str,
                status: ClientStatus,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_clients SET status = $1, updated_at = $2 \
                     WHERE tenant_id = $3 AND id = $4 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'client' AND a.id = oauth_clients.id)",
                )
                .bind(status.as_str())
                .bind(now.as_millis())
                .bind(tenant.as_str())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_client_secrets(&self, client_id: &str) -> Result<Vec<ClientSecretRecord>> {
                sqlx::query(
                    "SELECT * FROM oauth_client_secrets WHERE client_id = $1 \
                     ORDER BY created_at DESC, id",
                )
                .bind(client_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(client_secret_from_row)
                .collect()
            }

            async fn rotate_client_secret(
                &self,
                tenant: &TenantId,
                s: &ClientSecretRecord,
                old_expires_at: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Touching the client row first serialises concurrent rotations of one client.
                let found = sqlx::query(
                    "UPDATE oauth_clients SET updated_at = $1 WHERE id = $2 AND tenant_id = $3 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'client' AND a.id = oauth_clients.id)",
                )
                .bind(s.created_at.as_millis())
                .bind(&s.client_id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
                if found.rows_affected() != 1 {
                    return Ok(false);
                }
                sqlx::query(
                    "UPDATE oauth_client_secrets SET expires_at = $1 WHERE client_id = $2 \
                     AND (expires_at IS NULL OR expires_at > $1)",
                )
                .bind(old_expires_at.as_millis())
                .bind(&s.client_id)
                .execute(&mut *tx)
                .await?;
                insert_client_secret(&mut tx, s).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn touch_client(
                &self,
                client_id: &str,
                secret_id: Option<&str>,
                now: Timestamp,
            ) -> Result<()> {
                sqlx::query(
                    "UPDATE oauth_clients SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(client_id)
                .execute(&self.pool)
                .await?;
                if let Some(secret_id) = secret_id {
                    sqlx::query(
                        "UPDATE oauth_client_secrets SET last_used_at = $1 \
                         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(now.as_millis())
                    .bind(secret_id)
                    .execute(&self.pool)
                    .await?;
                }
                Ok(())
            }

            async fn record_assertion_jti(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM client_assertion_jtis WHERE client_id = $1 AND expires_at <= $2",
                )
                .bind(client_id)
                .bind(now.as_millis())
                .execute(&mut *tx)
                .await?;
                let inserted = sqlx::query(
                    "INSERT INTO client_assertion_jtis (client_id, jti, expires_at) \
                     VALUES ($1, $2, $3) ON CONFLICT (client_id, jti) DO NOTHING",
                )
                .bind(client_id)
                .bind(jti)
                .bind(expires_at.as_millis())
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(inserted.rows_affected() == 1)
            }
        }

        async fn insert_client_secret(
            tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
            s: &ClientSecretRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO oauth_client_secrets (id, client_id, display_prefix, secret_digest, \
                 created_at, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id)
            .bind(&s.client_id)
            .bind(&s.display_prefix)
            .bind(&s.secret_digest)
            .bind(s.created_at.as_millis())
            .bind(s.expires_at.map(Timestamp::as_millis))
            .bind(s.last_used_at.map(Timestamp::as_millis))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_write)?;
            Ok(())
        }

        /// Records `kind`/`id` archived inside `tx`. Returns `false` if it already was.
        async fn insert_archived_in(
            tx: &mut sqlx::Transaction<'_, Db>,
            o: &ArchivedObject,
        ) -> Result<bool> {
            let done = sqlx::query(
                "INSERT INTO archived_objects (kind, id, tenant_id, archived_at, archived_by) \
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (kind, id) DO NOTHING",
            )
            .bind(o.kind.as_str())
            .bind(&o.id)
            .bind(o.tenant.as_str())
            .bind(o.archived_at.as_millis())
            .bind(&o.archived_by)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_write)?;
            Ok(done.rows_affected() == 1)
        }

        type WriteQuery<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

        impl $store {
            /// The one archive transaction: `lock` writes the object's row (locking it against a
            /// concurrent change; no row: not found), `record` marks it archived (already marked:
            /// nothing changes), `expire` ends its secrets at once, and `revocation` is appended
            /// to the log, all committed together (or none).
            async fn archive_object(
                &self,
                lock: WriteQuery<'_>,
                record: ArchivedObject,
                expire: Option<WriteQuery<'_>>,
                revocation: Option<&NewRevocation>,
            ) -> Result<$crate::ArchiveOutcome> {
                let now = record.archived_at;
                let mut tx = self.pool.begin().await?;
                if lock.execute(&mut *tx).await?.rows_affected() != 1 {
                    return Ok($crate::ArchiveOutcome::NotFound);
                }
                if !insert_archived_in(&mut tx, &record).await? {
                    return Ok($crate::ArchiveOutcome::AlreadyArchived);
                }
                if let Some(expire) = expire {
                    expire.execute(&mut *tx).await?;
                }
                let entry = match revocation {
                    Some(r) => Some(append_revocation_in(&mut tx, r, now).await?),
                    None => None,
                };
                tx.commit().await?;
                if let Some(e) = &entry {
                    self.feed.publish(e.seq);
                }
                Ok($crate::ArchiveOutcome::Archived(entry))
            }
        }

        #[async_trait::async_trait]
        impl $crate::ArchiveStore for $store {
            async fn archive_tenant(
                &self,
                id: &TenantId,
                by: Option<&str>,
                revocation: &NewRevocation,
                now: Timestamp,
            ) -> Result<$crate::ArchiveOutcome> {
                self.archive_object(
                    sqlx::query("UPDATE tenants SET status = 'disabled', updated_at = $1 WHERE id = $2")
                        .bind(now.as_millis())
                        .bind(id.as_str()),
                    ArchivedObject {
                        kind: ArchivedKind::Tenant,
                        id: id.to_string(),
                        tenant: id.clone(),
                        archived_at: now,
                        archived_by: by.map(str::to_owned),
                    },
                    None,
                    Some(revocation),
                )
                .await
            }

            async fn archive_client(
                &self,
                tenant: &TenantId,
                id: &str,
                by: Option<&str>,
                revocation: &NewRevocation,
                now: Timestamp,
            ) -> Result<$crate::ArchiveOutcome> {
                self.archive_object(
                    sqlx::query(
                        "UPDATE oauth_clients SET status = 'disabled', updated_at = $1 \
                         WHERE tenant_id = $2 AND id = $3",
                    )
                    .bind(now.as_millis())
                    .bind(tenant.as_str())
                    .bind(id),
                    ArchivedObject {
                        kind: ArchivedKind::Client,
                        id: id.to_owned(),
                        tenant: tenant.clone(),
                        archived_at: now,
                        archived_by: by.map(str::to_owned),
                    },
                    Some(
                        sqlx::query(
                            "UPDATE oauth_client_secrets SET expires_at = $1 WHERE client_id = $2 \
                             AND (expires_at IS NULL OR expires_at > $1)",
                        )
                        .bind(now.as_millis())
                        .bind(id),
                    ),
                    Some(revocation),
                )
                .await
            }

            async fn archive_resource_server(
                &self,
                tenant: &TenantId,
                id: &str,
                by: Option<&str>,
                now: Timestamp,
            ) -> Result<$crate::ArchiveOutcome> {
                self.archive_object(
                    sqlx::query(
                        "UPDATE resource_servers SET updated_at = $1 WHERE tenant_id = $2 AND id = $3",
                    )
                    .bind(now.as_millis())
                    .bind(tenant.as_str())
                    .bind(id),
                    ArchivedObject {
                        kind: ArchivedKind::ResourceServer,
                        id: id.to_owned(),
                        tenant: tenant.clone(),
                        archived_at: now,
                        archived_by: by.map(str::to_owned),
                    },
                    Some(
                        sqlx::query(
                            "UPDATE resource_server_secrets SET expires_at = $1 \
                             WHERE resource_server_id = $2 AND (expires_at IS NULL OR expires_at > $1)",
                        )
                        .bind(now.as_millis())
                        .bind(id),
                    ),
                    None,
                )
                .await
            }

            async fn archived_at(&self, kind: ArchivedKind, id: &str) -> Result<Option<Timestamp>> {
                let at: Option<i64> = sqlx::query_scalar(
                    "SELECT archived_at FROM archived_objects WHERE kind = $1 AND id = $2",
                )
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
                Ok(at.map(Timestamp::from_millis))
            }
        }

        #[async_trait::async_trait]
        impl $crate::RevocationStore for $store {
            async fn append_revocation(
                &self,
                r: &NewRevocation,
                now: Timestamp,
            ) -> Result<RevocationEntry> {
                let mut tx = self.pool.begin().await?;
                let entry = append_revocation_in(&mut tx, r, now).await?;
                tx.commit().await?;
                self.feed.publish(entry.seq);
                Ok(entry)
            }

            async fn revocations_after(&self, after: i64, limit: u32) -> Result<Vec<RevocationEntry>> {
                sqlx::query("SELECT * FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after)
                    .bind(i64::from(limit))
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(revocation_from_row)
                    .collect()
            }

            async fn revocation_head(&self) -> Result<i64> {
                let seq = read_revocation_head(&self.pool).await?;
                self.feed.publish(seq);
                Ok(seq)
            }

            async fn revocations_in_range(
                &self,
                r: &RevocationRange,
            ) -> Result<Vec<RevocationEntry>> {
                sqlx::query(
                    "SELECT * FROM revocations WHERE seq > $1 AND seq <= $2 \
                     AND ($3 IS NULL OR expires_at IS NULL OR expires_at > $3) \
                     AND ($4 IS NULL OR tenant_id = $4 OR kind = 'signing_key') \
                     ORDER BY seq",
                )
                .bind(r.after)
                .bind(r.through)
                .bind(r.live_at.map(Timestamp::as_millis))
                .bind(r.tenant.as_ref().map(TenantId::as_str))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(revocation_from_row)
                .collect()
            }

            fn watch_revocation_head(&self) -> tokio::sync::watch::Receiver<i64> {
                let pool = self.pool.clone();
                self.feed.subscribe(move |sink| $follow_head(pool, sink))
            }

            async fn revocations_naming(
                &self,
                candidates: &[Candidate<'_>],
            ) -> Result<Vec<RevocationEntry>> {
                if candidates.is_empty() {
                    return Ok(Vec::new());
                }
                // One lookup per candidate on the (tenant_id, kind, subject) index; which of the
                // rows found revoke anything is decided in core, never here.
                let clauses: Vec<String> = (0..candidates.len())
                    .map(|i| {
                        let n = i * 3;
                        format!(
                            "(kind = ${} AND subject = ${} AND (${} IS NULL OR tenant_id = ${}))",
                            n + 1,
                            n + 2,
                            n + 3,
                            n + 3
                        )
                    })
                    .collect();
                let sql = format!(
                    "SELECT * FROM revocations WHERE {} ORDER BY seq",
                    clauses.join(" OR ")
                );
                let mut query = sqlx::query(&sql);
                for c in candidates {
                    query = query
                        .bind(c.kind.as_str())
                        .bind(c.subject)
                        .bind(c.tenant.map(TenantId::as_str));
                }
                query
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(revocation_from_row)
                    .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ApiKeyStore for $store {
            async fn insert_api_key(&self, k: &ApiKeyRecord) -> Result<()> {
                insert_api_key_with(&self.pool, k).await
            }

            async fn insert_api_keys(&self, keys: &[ApiKeyRecord]) -> Result<()> {
                // 24 parameters a row: 400 rows stay well under SQLite's 32,766 and PostgreSQL's
                // 65,535 bound parameters per statement.
                const ROWS_PER_STATEMENT: usize = 400;
                if keys.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for chunk in keys.chunks(ROWS_PER_STATEMENT) {
                    api_key_insert(chunk)
                        .build()
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from_write)?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>> {
                sqlx::query("SELECT * FROM api_keys WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(api_key_from_row)
                    .transpose()
            }

            async fn list_api_keys(
                &self,
                tenant: &TenantId,
                f: &ApiKeyFilter,
                page: &PageRequest,
            ) -> Result<Page<ApiKeyRecord>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM api_keys WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                if let Some(environment) = &f.environment {
                    q.push(" AND environment = ").push_bind(environment.clone());
                }
                if let Some(owner) = &f.owner {
                    q.push(" AND owner = ").push_bind(owner.clone());
                }
                push_keyset(&mut q, page, "created_at", "id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(api_key_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |k| created_key(k.created_at, &k.id)))
            }

            async fn update_api_key_attributes(
                &self,
                k: &ApiKeyRecord,
                now: Timestamp,
            ) -> Result<bool> {
                let update = sqlx::query(
                    "UPDATE api_keys SET name = $1, description = $2, scopes = $3, \
                     audiences = $4, ip_allowlist = $5, rate_limit_requests = $6, \
                     rate_limit_window_secs = $7, metadata = $8 \
                     WHERE id = $9 AND tenant_id = $10 \
                     RETURNING id, expires_at, rotation_overlap_ends_at",
                )
                .bind(&k.name)
                .bind(&k.description)
                .bind(&k.scopes)
                .bind(&k.audiences)
                .bind(&k.ip_allowlist)
                .bind(k.rate_limit_requests)
                .bind(k.rate_limit_window_secs)
                .bind(&k.metadata)
                .bind(&k.id)
                .bind(k.tenant.as_str());
                let changed = change_api_keys_logged(
                    self,
                    update,
                    &k.tenant,
                    RevocationKind::ApiKeyChanged,
                    "updated",
                    now,
                )
                .await?;
                Ok(!changed.is_empty())
            }

            async fn set_api_key_disabled(
                &self,
                tenant: &TenantId,
                id: &str,
                disabled_at: Option<Timestamp>,
                now: Timestamp,
            ) -> Result<bool> {
                let update = sqlx::query(
                    "UPDATE api_keys SET disabled_at = $1 \
                     WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL \
                     RETURNING id, expires_at, rotation_overlap_ends_at",
                )
                .bind(disabled_at.map(Timestamp::as_millis))
                .bind(id)
                .bind(tenant.as_str());
                let reason = if disabled_at.is_some() { "disabled" } else { "enabled" };
                let changed = change_api_keys_logged(
                    self,
                    update,
                    tenant,
                    RevocationKind::ApiKeyChanged,
                    reason,
                    now,
                )
                .await?;
                Ok(!changed.is_empty())
            }

            async fn revoke_api_key(
                &self,
                tenant: &TenantId,
                id: &str,
                reason: &str,
                now: Timestamp,
            ) -> Result<bool> {
                let update = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 \
                     WHERE id = $3 AND tenant_id = $4 AND revoked_at IS NULL \
                     RETURNING id, expires_at, rotation_overlap_ends_at",
                )
                .bind(now.as_millis())
                .bind(reason)
                .bind(id)
                .bind(tenant.as_str());
                let changed =
                    change_api_keys_logged(self, update, tenant, RevocationKind::ApiKey, reason, now)
                        .await?;
                Ok(!changed.is_empty())
            }

            async fn revoke_api_keys_by_owner(
                &self,
                tenant: &TenantId,
                owner: &str,
                reason: &str,
                now: Timestamp,
            ) -> Result<Vec<String>> {
                let update = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2 \
                     WHERE tenant_id = $3 AND owner = $4 AND revoked_at IS NULL \
                     RETURNING id, expires_at, rotation_overlap_ends_at",
                )
                .bind(now.as_millis())
                .bind(reason)
                .bind(tenant.as_str())
                .bind(owner);
                change_api_keys_logged(self, update, tenant, RevocationKind::ApiKey, reason, now)
                    .await
            }

            async fn rotate_api_key(
                &self,
                old_id: &str,
                overlap_ends_at: Timestamp,
                new_key: &ApiKeyRecord,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let old: Option<Option<i64>> = sqlx::query_scalar(
                    "UPDATE api_keys SET replaced_by = $1, rotation_overlap_ends_at = $2 \
                     WHERE id = $3 AND tenant_id = $4 AND revoked_at IS NULL \
                     AND replaced_by IS NULL RETURNING expires_at",
                )
                .bind(&new_key.id)
                .bind(overlap_ends_at.as_millis())
                .bind(old_id)
                .bind(new_key.tenant.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(old_expires_at) = old else {
                    tx.rollback().await?;
                    return Ok(false);
                };
                insert_api_key_with(&mut *tx, new_key).await?;
                let entry = api_key_entry(
                    &new_key.tenant,
                    old_id.to_owned(),
                    RevocationKind::ApiKeyChanged,
                    "rotated",
                    old_expires_at,
                    Some(overlap_ends_at.as_millis()),
                );
                let seq = append_revocation_in(&mut tx, &entry, new_key.created_at).await?.seq;
                tx.commit().await?;
                self.feed.publish(seq);
                Ok(true)
            }

            async fn record_api_key_uses(&self, uses: &[ApiKeyUse]) -> Result<()> {
                if uses.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                for u in uses {
                    sqlx::query(
                        "UPDATE api_keys SET last_used_at = $1, last_used_ip = $2 \
                         WHERE id = $3 AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(u.at.as_millis())
                    .bind(&u.ip)
                    .bind(&u.id)
                    .execute(&mut *tx)
                    .await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_api_key_policy(
                &self,
                tenant: &TenantId,
            ) -> Result<Option<ApiKeyPolicyRecord>> {
                let Some(row) = sqlx::query("SELECT * FROM api_key_policies WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                else {
                    return Ok(None);
                };
                let allow_never: i64 = row.try_get("allow_never")?;
                Ok(Some(ApiKeyPolicyRecord {
                    default_ttl_secs: row.try_get("default_ttl_secs")?,
                    max_ttl_secs: row.try_get("max_ttl_secs")?,
                    allow_never: allow_never == 1,
                }))
            }

            async fn put_api_key_policy(
                &self,
                tenant: &TenantId,
                p: &ApiKeyPolicyRecord,
                now: Timestamp,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO api_key_policies (tenant_id, default_ttl_secs, max_ttl_secs, \
                     allow_never, updated_at) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id) DO UPDATE SET \
                     default_ttl_secs = excluded.default_ttl_secs, \
                     max_ttl_secs = excluded.max_ttl_secs, \
                     allow_never = excluded.allow_never, updated_at = excluded.updated_at",
                )
                .bind(tenant.as_str())
                .bind(p.default_ttl_secs)
                .bind(p.max_ttl_secs)
                .bind(i64::from(p.allow_never))
                .bind(now.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            fn pool_stats(&self) -> $crate::PoolStats {
                $crate::PoolStats {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn close(&self) {
                // The follower holds a pooled connection that closing the pool would wait for.
                self.feed.stop();
                self.pool.close().await;
            }
        }

        impl $store {
            /// How often the revocation-head follower reads the head row as a safety net for
            /// lost notifications (default [`crate::DEFAULT_REVOCATION_POLL_INTERVAL`]). Takes
            /// effect from the follower's next poll.
            pub fn set_revocation_poll_interval(&self, every: std::time::Duration) {
                self.feed.set_poll_interval(every);
            }

            /// Applies embedded migrations, refusing a schema newer than this binary.
            async fn migrate(pool: &sqlx::Pool<<$row as sqlx::Row>::Database>, migrator: &sqlx::migrate::Migrator, table_exists_sql: &'static str) -> Result<()> {
                let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
                let exists: bool = sqlx::query_scalar(table_exists_sql).fetch_one(pool).await?;
                if exists {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
                    )
                    .fetch_one(pool)
                    .await?;
                    if let Some(found) = found.filter(|f| *f > supported) {
                        return Err(StoreError::SchemaTooNew { found, supported });
                    }
                }
                migrator.run(pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_store;
