//! The SQL of [`crate::LifetimeStore`]: tenants' credential lifetime policies
//! (`tenant_lifetime_policies`) and when trust rules and redirect URIs last matched
//! (`admission_matches`), expanded for each backend beside `impl_sql_store!` (whose helper
//! `tenant_id` it uses). This module stores what the service checked; it must never decide
//! whether a credential complies.

macro_rules! impl_lifetime_store {
    ($store:ty, $row:ty) => {
        fn lifetime_policy_from_row(row: &$row) -> Result<$crate::LifetimePolicyRecord> {
            let required: i64 = row.try_get("client_secret_expiry_required")?;
            Ok($crate::LifetimePolicyRecord {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                client_secret_max_age_secs: row.try_get("client_secret_max_age_secs")?,
                client_secret_expiry_required: required == 1,
                existing: row.try_get("existing")?,
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::LifetimeStore for $store {
            async fn put_lifetime_policy(&self, p: &$crate::LifetimePolicyRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenant_lifetime_policies (tenant_id, client_secret_max_age_secs, \
                     client_secret_expiry_required, existing, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id) DO UPDATE SET \
                     client_secret_max_age_secs = excluded.client_secret_max_age_secs, \
                     client_secret_expiry_required = excluded.client_secret_expiry_required, \
                     existing = excluded.existing, updated_at = excluded.updated_at",
                )
                .bind(p.tenant.as_str())
                .bind(p.client_secret_max_age_secs)
                .bind(i64::from(p.client_secret_expiry_required))
                .bind(&p.existing)
                .bind(p.updated_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_lifetime_policy(
                &self,
                tenant: &TenantId,
            ) -> Result<Option<$crate::LifetimePolicyRecord>> {
                sqlx::query("SELECT * FROM tenant_lifetime_policies WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(lifetime_policy_from_row)
                    .transpose()
            }

            async fn tenants_with_existing_mode(&self, mode: &str) -> Result<Vec<TenantId>> {
                sqlx::query_scalar::<_, String>(
                    "SELECT tenant_id FROM tenant_lifetime_policies WHERE existing = $1 \
                     ORDER BY tenant_id",
                )
                .bind(mode)
                .fetch_all(&self.pool)
                .await?
                .into_iter()
                .map(tenant_id)
                .collect()
            }

            async fn record_admission_match(
                &self,
                tenant: &TenantId,
                kind: &str,
                subject: &str,
                now: Timestamp,
            ) -> Result<()> {
                let mut writer = self.group.writer().await?;
                sqlx::query(
                    "INSERT INTO admission_matches \
                     (tenant_id, kind, subject, match_count, last_matched_at) \
                     VALUES ($1, $2, $3, 1, $4) \
                     ON CONFLICT (tenant_id, kind, subject) DO UPDATE SET \
                     match_count = admission_matches.match_count + 1, \
                     last_matched_at = CASE WHEN excluded.last_matched_at > \
                     admission_matches.last_matched_at THEN excluded.last_matched_at \
                     ELSE admission_matches.last_matched_at END",
                )
                .bind(tenant.as_str())
                .bind(kind)
                .bind(subject)
                .bind(now.as_millis())
                .execute(&mut *writer)
                .await
                .map_err(StoreError::from_write)?;
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn admission_matches(
                &self,
                tenant: &TenantId,
            ) -> Result<Vec<$crate::AdmissionMatch>> {
                sqlx::query(
                    "SELECT kind, subject, match_count, last_matched_at FROM admission_matches \
                     WHERE tenant_id = $1 ORDER BY kind, subject",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok($crate::AdmissionMatch {
                        kind: r.try_get("kind")?,
                        subject: r.try_get("subject")?,
                        match_count: r.try_get("match_count")?,
                        last_matched_at: Timestamp::from_millis(r.try_get("last_matched_at")?),
                    })
                })
                .collect()
            }
        }
    };
}

pub(crate) use impl_lifetime_store;
