//! The SQL of [`crate::ApiKeyStore`]: API keys (digests only), their policies and last-use
//! records; every change that ends a key appends its revocation entry in the same transaction.
//! Expanded for each backend beside `impl_sql_store!`, whose helpers and imports it shares. This
//! module must never see a plaintext key.

macro_rules! impl_api_key_store {
    ($store:ty, $row:ty) => {
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
        /// Sets (or, with `None`, clears) a live key's `disabled_at` with its change logged;
        /// `only_if_enabled` makes it a compare-and-swap that changes only an enabled key (the
        /// lifetime sweep: two nodes sweeping at once disable a key once). Whether it changed a
        /// key.
        async fn set_disabled(
            store: &$store,
            tenant: &TenantId,
            id: &str,
            disabled_at: Option<Timestamp>,
            only_if_enabled: bool,
            now: Timestamp,
        ) -> Result<bool> {
            let update = sqlx::query(
                "UPDATE api_keys SET disabled_at = $1 \
                 WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL \
                 AND ($4 = 0 OR disabled_at IS NULL) \
                 RETURNING id, expires_at, rotation_overlap_ends_at",
            )
            .bind(disabled_at.map(Timestamp::as_millis))
            .bind(id)
            .bind(tenant.as_str())
            .bind(i64::from(only_if_enabled));
            let reason = if disabled_at.is_some() { "disabled" } else { "enabled" };
            let changed = change_api_keys_logged(
                store,
                update,
                tenant,
                RevocationKind::ApiKeyChanged,
                reason,
                now,
            )
            .await?;
            Ok(!changed.is_empty())
        }

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

            async fn get_tenant_api_key(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<ApiKeyRecord>> {
                sqlx::query("SELECT * FROM api_keys WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant.as_str())
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
                set_disabled(self, tenant, id, disabled_at, false, now).await
            }

            async fn disable_api_key_if_enabled(
                &self,
                tenant: &TenantId,
                id: &str,
                now: Timestamp,
            ) -> Result<bool> {
                set_disabled(self, tenant, id, Some(now), true, now).await
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
                // Through group commit, like the audit flush: a batch of request-derived writes.
                let mut writer = self.group.writer().await?;
                let mut tx = writer.begin().await?;
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
                self.group.durable(writer).await?;
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

    };
}

pub(crate) use impl_api_key_store;
