//! The SQL of [`crate::RevocationStore`]: the revocation log and its head, appended inside the
//! transaction that makes the change it records. Expanded for each backend beside
//! `impl_sql_store!`, whose helpers and imports it shares; `$follow_head` is the backend's
//! follower of other nodes' appends. This module must never rewrite or reorder a log entry.

macro_rules! impl_revocation_store {
    ($store:ty, $row:ty, $follow_head:path) => {
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

    };
}

pub(crate) use impl_revocation_store;
