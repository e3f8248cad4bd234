//! The SQL of [`crate::CaSetStore`]: a tenant's CA sets for mutual-TLS client authentication
//! (RFC 8705), expanded for each backend beside `impl_sql_store!` (whose helper `tenant_id` it
//! uses). This module stores PEM text the admin API checked; it must never be where a
//! certificate is parsed or trusted.

macro_rules! impl_ca_set_store {
    ($store:ty, $row:ty) => {
        fn ca_set_from_row(row: &$row) -> Result<$crate::CaSetRecord> {
            Ok($crate::CaSetRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                name: row.try_get("name")?,
                pem: row.try_get("pem")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::CaSetStore for $store {
            async fn insert_ca_set(&self, r: &$crate::CaSetRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenant_ca_sets (id, tenant_id, name, pem, created_at) \
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&r.id)
                .bind(r.tenant.as_str())
                .bind(&r.name)
                .bind(&r.pem)
                .bind(r.created_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn list_ca_sets(&self, tenant: &TenantId) -> Result<Vec<$crate::CaSetRecord>> {
                sqlx::query(
                    "SELECT * FROM tenant_ca_sets WHERE tenant_id = $1 ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(ca_set_from_row)
                .collect()
            }

            async fn delete_ca_set(&self, tenant: &TenantId, id: &str) -> Result<bool> {
                let done =
                    sqlx::query("DELETE FROM tenant_ca_sets WHERE tenant_id = $1 AND id = $2")
                        .bind(tenant.as_str())
                        .bind(id)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_ca_set_store;
