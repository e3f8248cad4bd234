//! The SQL of [`crate::TenantOAuthPolicyStore`]: a tenant's OAuth rules for all its clients
//! (`tenant_oauth_policies`, one row per tenant that set any), expanded for each backend beside
//! `impl_sql_store!`.
//!
//! This module only stores the rules; the service decides what they mean.

macro_rules! impl_tenant_oauth_policy_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::TenantOAuthPolicyStore for $store {
            async fn get_oauth_policy(
                &self,
                tenant: &TenantId,
            ) -> Result<Option<$crate::OAuthPolicyRecord>> {
                let Some(row) =
                    sqlx::query("SELECT * FROM tenant_oauth_policies WHERE tenant_id = $1")
                        .bind(tenant.as_str())
                        .fetch_optional(&self.pool)
                        .await?
                else {
                    return Ok(None);
                };
                let require_par: i64 = row.try_get("require_pushed_requests")?;
                Ok(Some($crate::OAuthPolicyRecord {
                    require_pushed_requests: require_par != 0,
                    updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                }))
            }

            async fn put_oauth_policy(
                &self,
                tenant: &TenantId,
                require_pushed_requests: bool,
                now: Timestamp,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenant_oauth_policies (tenant_id, require_pushed_requests, \
                     updated_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (tenant_id) DO UPDATE SET \
                     require_pushed_requests = excluded.require_pushed_requests, \
                     updated_at = excluded.updated_at",
                )
                .bind(tenant.as_str())
                .bind(i64::from(require_pushed_requests))
                .bind(now.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_tenant_oauth_policy_store;
