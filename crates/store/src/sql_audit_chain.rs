//! The SQL of [`crate::AuditChainStore`]: reading the audit chain in position order, its
//! checkpoints, the verified prune's delete, and the oldest-first export read. Expanded for each
//! backend beside `impl_sql_store!` and `impl_audit_store!` (whose `audit_event_from_row` it
//! uses). Appending and chaining are in `sql_audit.rs`.
//!
//! This module must never change a chained event, its position or hash, or a checkpoint's
//! position or hash; the only delete is the prune, and only up to a checkpoint.

macro_rules! impl_audit_chain_store {
    ($store:ty, $row:ty) => {
        use $crate::audit_chain_model::*;

        fn checkpoint_from_row(row: &$row) -> Result<AuditCheckpoint> {
            Ok(AuditCheckpoint {
                pos: row.try_get("pos")?,
                hash: row.try_get("hash")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                kid: row.try_get("kid")?,
                signature: row.try_get("signature")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::AuditChainStore for $store {
            async fn audit_chain_head(&self) -> Result<(i64, Vec<u8>)> {
                let row = sqlx::query("SELECT pos, hash FROM audit_chain_head WHERE id = 1")
                    .fetch_one(&self.pool)
                    .await?;
                Ok((row.try_get("pos")?, row.try_get("hash")?))
            }

            async fn audit_chain_events(
                &self,
                after: i64,
                limit: u32,
            ) -> Result<Vec<ChainedEvent>> {
                sqlx::query(
                    "SELECT * FROM audit_events WHERE chain_pos > $1 \
                     ORDER BY chain_pos LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit.max(1)))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|r| {
                    Ok(ChainedEvent {
                        pos: r.try_get("chain_pos")?,
                        hash: r.try_get("chain_hash")?,
                        event: audit_event_from_row(r)?,
                    })
                })
                .collect()
            }

            async fn audit_chain_first(&self) -> Result<Option<i64>> {
                Ok(
                    sqlx::query_scalar("SELECT MIN(chain_pos) FROM audit_events")
                        .fetch_one(&self.pool)
                        .await?,
                )
            }

            async fn count_unchained_audit_events(&self) -> Result<u64> {
                let n: i64 =
                    sqlx::query_scalar("SELECT COUNT(*) FROM audit_events WHERE chain_pos IS NULL")
                        .fetch_one(&self.pool)
                        .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn insert_audit_checkpoint(&self, cp: &AuditCheckpoint) -> Result<bool> {
                let done = sqlx::query(
                    "INSERT INTO audit_checkpoints (pos, hash, created_at, kid, signature) \
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (pos) DO NOTHING",
                )
                .bind(cp.pos)
                .bind(&cp.hash)
                .bind(cp.created_at.as_millis())
                .bind(&cp.kid)
                .bind(&cp.signature)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn audit_checkpoints(&self) -> Result<Vec<AuditCheckpoint>> {
                sqlx::query("SELECT * FROM audit_checkpoints ORDER BY pos")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(checkpoint_from_row)
                    .collect()
            }

            async fn re_sign_audit_checkpoint(
                &self,
                pos: i64,
                from_kid: &str,
                to_kid: &str,
                signature: &str,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE audit_checkpoints SET kid = $1, signature = $2 \
                     WHERE pos = $3 AND kid = $4",
                )
                .bind(to_kid)
                .bind(signature)
                .bind(pos)
                .bind(from_kid)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_audit_events(
                &self,
                at: i64,
                before: Timestamp,
            ) -> Result<Option<AuditPrune>> {
                let mut tx = self.pool.begin().await?;
                let up_to: Option<i64> = sqlx::query_scalar(
                    "SELECT pos FROM audit_checkpoints WHERE pos = $1 AND created_at < $2",
                )
                .bind(at)
                .bind(before.as_millis())
                .fetch_optional(&mut *tx)
                .await?;
                let Some(up_to) = up_to else {
                    return Ok(None);
                };
                let chained = sqlx::query("DELETE FROM audit_events WHERE chain_pos <= $1")
                    .bind(up_to)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                let legacy = sqlx::query(
                    "DELETE FROM audit_events WHERE chain_pos IS NULL AND occurred_at < $1",
                )
                .bind(before.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                // Checkpoints before the new start vouch for nothing stored any more.
                sqlx::query("DELETE FROM audit_checkpoints WHERE pos < $1")
                    .bind(up_to)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(Some(AuditPrune {
                    up_to,
                    deleted: chained + legacy,
                }))
            }

            async fn export_audit_events(
                &self,
                q: &AuditExportQuery,
            ) -> Result<Vec<(i64, AuditEvent)>> {
                let mut b = sqlx::QueryBuilder::new("SELECT * FROM audit_events WHERE seq > ");
                b.push_bind(q.after_seq);
                if let Some(tenant) = &q.tenant {
                    b.push(" AND tenant_id = ")
                        .push_bind(tenant.as_str().to_owned());
                }
                if let Some(since) = q.since {
                    b.push(" AND occurred_at >= ").push_bind(since.as_millis());
                }
                b.push(" ORDER BY seq LIMIT ")
                    .push_bind(i64::from(q.limit.max(1)));
                b.build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok((r.try_get::<i64, _>("seq")?, audit_event_from_row(r)?)))
                    .collect()
            }
        }
    };
}

pub(crate) use impl_audit_chain_store;
