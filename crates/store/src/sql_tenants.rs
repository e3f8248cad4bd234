//! The SQL of [`crate::TenantStore`] and [`crate::ArchiveStore`]: tenants, and the one archive
//! transaction for tenants, clients and resource servers. Expanded for each backend beside
//! `impl_sql_store!`, whose helpers and imports it shares. This module must never delete an
//! archived object's row: archiving only hides it and ends what it could still do.

macro_rules! impl_tenant_store {
    ($store:ty, $row:ty) => {
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

    };
}

pub(crate) use impl_tenant_store;
