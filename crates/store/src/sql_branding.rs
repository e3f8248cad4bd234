//! The SQL of [`crate::BrandingStore`]: one row per tenant in `tenant_branding`, expanded for
//! each backend beside `impl_sql_store!` (whose helper `tenant_id` it uses). This module stores
//! what the service checked; it must never be the place values are validated or escaped.

macro_rules! impl_branding_store {
    ($store:ty, $row:ty) => {
        fn branding_from_row(row: &$row) -> Result<$crate::BrandingRecord> {
            Ok($crate::BrandingRecord {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                display_name: row.try_get("display_name")?,
                logo_url: row.try_get("logo_url")?,
                accent_colour: row.try_get("accent_colour")?,
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::BrandingStore for $store {
            async fn put_branding(&self, b: &$crate::BrandingRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO tenant_branding \
                     (tenant_id, display_name, logo_url, accent_colour, updated_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id) DO UPDATE SET \
                     display_name = excluded.display_name, logo_url = excluded.logo_url, \
                     accent_colour = excluded.accent_colour, updated_at = excluded.updated_at",
                )
                .bind(b.tenant.as_str())
                .bind(&b.display_name)
                .bind(&b.logo_url)
                .bind(&b.accent_colour)
                .bind(b.updated_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_branding(
                &self,
                tenant: &TenantId,
            ) -> Result<Option<$crate::BrandingRecord>> {
                sqlx::query("SELECT * FROM tenant_branding WHERE tenant_id = $1")
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(branding_from_row)
                    .transpose()
            }
        }
    };
}

pub(crate) use impl_branding_store;
