//! The SQL of [`crate::PushedRequestStore`] (RFC 9126 pushed authorization requests), expanded
//! for each backend beside `impl_sql_store!`.
//!
//! Opening and using are compare-and-swap updates, so two nodes racing the same request_uri
//! see one outcome. This module must never decide whether a request is acceptable (core and
//! the service do), only store it and make each state change happen once.

macro_rules! impl_pushed_request_store {
    ($store:ty, $row:ty) => {
        fn pushed_from_row(row: &$row) -> Result<$crate::PushedRequestRecord> {
            Ok($crate::PushedRequestRecord {
                digest: row.try_get("digest")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                client_id: stored_client_id(row.try_get("client_id")?)?,
                params: row.try_get("params")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                opened_at: ts(row.try_get("opened_at")?),
                used_at: ts(row.try_get("used_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::PushedRequestStore for $store {
            async fn insert_pushed_request(&self, r: &$crate::PushedRequestRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO pushed_requests (digest, tenant_id, client_id, params, \
                     created_at, expires_at, opened_at, used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(&r.digest)
                .bind(r.tenant.as_str())
                .bind(r.client_id.as_str())
                .bind(&r.params)
                .bind(r.created_at.as_millis())
                .bind(r.expires_at.as_millis())
                .bind(r.opened_at.map(Timestamp::as_millis))
                .bind(r.used_at.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn open_pushed_request(
                &self,
                digest: &[u8],
                client_id: &str,
                now: Timestamp,
                open_until: Timestamp,
            ) -> Result<Option<$crate::PushedRequestRecord>> {
                // One statement: the first opening moves the expiry to the sign-in window;
                // an opened request keeps its expiry. Used or expired rows never match.
                let row = sqlx::query(
                    "UPDATE pushed_requests SET \
                     expires_at = CASE WHEN opened_at IS NULL THEN $4 ELSE expires_at END, \
                     opened_at = COALESCE(opened_at, $3) \
                     WHERE digest = $1 AND client_id = $2 AND used_at IS NULL \
                     AND expires_at > $3 RETURNING *",
                )
                .bind(digest)
                .bind(client_id)
                .bind(now.as_millis())
                .bind(open_until.as_millis())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(pushed_from_row).transpose()
            }

            async fn use_pushed_request(&self, digest: &[u8], now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE pushed_requests SET used_at = $2 WHERE digest = $1 \
                     AND used_at IS NULL AND opened_at IS NOT NULL AND expires_at > $2",
                )
                .bind(digest)
                .bind(now.as_millis())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_pushed_requests(&self, before: Timestamp) -> Result<u64> {
                let done = sqlx::query("DELETE FROM pushed_requests WHERE expires_at <= $1")
                    .bind(before.as_millis())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_pushed_request_store;
