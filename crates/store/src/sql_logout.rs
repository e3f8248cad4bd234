//! The SQL of [`crate::LogoutStore`] (back-channel logout), expanded for each backend beside
//! `impl_sql_store!` (whose helpers `ts` and `tenant_id` and whose imports it shares).
//!
//! A delivery is claimed by one compare-and-swap `UPDATE` that moves its `next_attempt_at` past
//! a lease only if it is still due: on PostgreSQL a second node racing for the same row re-reads
//! it after the first commits and finds it no longer due; on SQLite writers are serialised. This
//! module must never store a logout token (they are minted per attempt) and never decide when to
//! retry or give up (the service does).

macro_rules! impl_logout_store {
    ($store:ty, $row:ty) => {
        use $crate::logout_model::BackchannelDelivery;

        fn delivery_from_row(row: &$row) -> Result<BackchannelDelivery> {
            let attempts: i64 = row.try_get("attempts")?;
            Ok(BackchannelDelivery {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                client_id: row.try_get("client_id")?,
                sid: row.try_get("sid")?,
                user_id: row.try_get("user_id")?,
                attempts: u32::try_from(attempts).unwrap_or(u32::MAX),
                next_attempt_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                last_error: row.try_get("last_error")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::LogoutStore for $store {
            async fn record_session_client(
                &self,
                tenant: &TenantId,
                sid: &str,
                client_id: &str,
                now: Timestamp,
            ) -> Result<()> {
                let mut writer = self.group.writer().await?;
                sqlx::query(
                    "INSERT INTO session_clients (tenant_id, sid, client_id, first_at) \
                     VALUES ($1, $2, $3, $4) ON CONFLICT (sid, client_id) DO NOTHING",
                )
                .bind(tenant.as_str())
                .bind(sid)
                .bind(client_id)
                .bind(now.as_millis())
                .execute(&mut *writer)
                .await
                .map_err(StoreError::from_write)?;
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn session_clients(&self, tenant: &TenantId, sid: &str) -> Result<Vec<String>> {
                let rows = sqlx::query(
                    "SELECT client_id FROM session_clients WHERE tenant_id = $1 AND sid = $2 \
                     ORDER BY client_id",
                )
                .bind(tenant.as_str())
                .bind(sid)
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|r| Ok(r.try_get("client_id")?))
                    .collect()
            }

            async fn enqueue_backchannel_logouts(
                &self,
                tenant: &TenantId,
                sids: &[String],
                now: Timestamp,
            ) -> Result<u64> {
                let mut queued = 0;
                let mut tx = self.pool.begin().await?;
                for sid in sids {
                    // The WHERE clause also keeps SQLite from reading ON CONFLICT as a join
                    // constraint of the SELECT.
                    let done = sqlx::query(
                        "INSERT INTO backchannel_deliveries (id, tenant_id, client_id, sid, \
                         user_id, attempts, next_attempt_at, created_at) \
                         SELECT sc.sid || ':' || sc.client_id, sc.tenant_id, sc.client_id, \
                         sc.sid, s.user_id, 0, $1, $1 \
                         FROM session_clients sc \
                         JOIN sign_in_sessions s ON s.id = sc.sid AND s.tenant_id = sc.tenant_id \
                         JOIN oauth_clients c ON c.id = sc.client_id AND c.tenant_id = sc.tenant_id \
                         WHERE sc.tenant_id = $2 AND sc.sid = $3 \
                         AND c.backchannel_logout_uri IS NOT NULL \
                         ON CONFLICT (id) DO NOTHING",
                    )
                    .bind(now.as_millis())
                    .bind(tenant.as_str())
                    .bind(sid)
                    .execute(&mut *tx)
                    .await?;
                    queued += done.rows_affected();
                }
                tx.commit().await?;
                Ok(queued)
            }

            async fn claim_backchannel_deliveries(
                &self,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<BackchannelDelivery>> {
                let rows = sqlx::query(
                    "UPDATE backchannel_deliveries SET attempts = attempts + 1, \
                     next_attempt_at = $1 \
                     WHERE id IN (SELECT id FROM backchannel_deliveries \
                     WHERE next_attempt_at <= $2 ORDER BY next_attempt_at, id LIMIT $3) \
                     AND next_attempt_at <= $2 RETURNING *",
                )
                .bind(lease_until.as_millis())
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?;
                let mut claimed = rows
                    .iter()
                    .map(delivery_from_row)
                    .collect::<Result<Vec<_>>>()?;
                claimed.sort_by(|a, b| a.id.cmp(&b.id));
                Ok(claimed)
            }

            async fn retry_backchannel_delivery(
                &self,
                id: &str,
                next_attempt_at: Timestamp,
                error: &str,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE backchannel_deliveries SET next_attempt_at = $1, last_error = $2 \
                     WHERE id = $3",
                )
                .bind(next_attempt_at.as_millis())
                .bind(error)
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn delete_backchannel_delivery(&self, id: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM backchannel_deliveries WHERE id = $1")
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_session_clients(&self) -> Result<u64> {
                let done = sqlx::query(
                    "DELETE FROM session_clients WHERE NOT EXISTS \
                     (SELECT 1 FROM sign_in_sessions s WHERE s.id = session_clients.sid)",
                )
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }
        }
    };
}

pub(crate) use impl_logout_store;
