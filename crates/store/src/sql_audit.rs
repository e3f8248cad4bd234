//! The SQL of [`crate::AuditStore`] and [`crate::AlertStore`]: the append-only audit log and the
//! alerts raised from it. Expanded for each backend beside `impl_sql_store!`, whose helpers and
//! imports it shares. Appends chain each event (position and hash, `audit_chain_head`); the
//! chain's reads and its prune are in `sql_audit_chain.rs`. This module must never update or
//! delete an audit event.

macro_rules! impl_audit_store {
    ($store:ty, $row:ty) => {
        fn audit_event_from_row(row: &$row) -> Result<AuditEvent> {
            let outcome: String = row.try_get("outcome")?;
            Ok(AuditEvent {
                id: row.try_get("id")?,
                occurred_at: Timestamp::from_millis(row.try_get("occurred_at")?),
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                actor: Actor::from_stored(row.try_get("actor")?),
                credential_id: row.try_get("credential_id")?,
                client_ip: row.try_get("client_ip")?,
                user_agent: row.try_get("user_agent")?,
                action: Action::parse(row.try_get("action")?),
                outcome: Outcome::parse(&outcome).ok_or_else(|| corrupt("outcome", &outcome))?,
                reason: row
                    .try_get::<Option<String>, _>("reason")?
                    .map(Reason::from_stored),
                request_id: row.try_get("request_id")?,
                target: row.try_get("target")?,
            })
        }

        /// Appends `events` after the chain head inside `tx`. `false` (nothing to commit) if an
        /// event's id is stored already.
        async fn append_chained(
            tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
            events: &[&AuditEvent],
        ) -> Result<bool> {
            use portcullis_core::audit_chain::{link, Hash};
            // Multi-row statements rather than one per event, so a busy endpoint costs the
            // database one round trip per few dozen events. Only three statement shapes (64,
            // 8 and 1 rows) are used, so each stays prepared in the connection's cache; a
            // shape per batch size cached tens of megabytes of statements.
            const SHAPES: [usize; 3] = [64, 8, 1];
            let head = sqlx::query(
                "UPDATE audit_chain_head SET pos = pos WHERE id = 1 RETURNING pos, hash",
            )
            .fetch_one(&mut **tx)
            .await?;
            let mut pos: i64 = head.try_get("pos")?;
            let stored: Vec<u8> = head.try_get("hash")?;
            let mut prev: Hash = stored
                .as_slice()
                .try_into()
                .map_err(|_| corrupt("audit chain head hash", "wrong length"))?;
            let chained: Vec<(&AuditEvent, i64, Hash)> = events
                .iter()
                .map(|e| {
                    pos += 1;
                    prev = link(&prev, pos, e);
                    (*e, pos, prev)
                })
                .collect();
            let mut inserted = 0u64;
            let mut rest = chained.as_slice();
            for rows in SHAPES {
                while rest.len() >= rows {
                    let (chunk, tail) = rest.split_at(rows);
                    rest = tail;
                    let mut q = sqlx::QueryBuilder::new(
                        "INSERT INTO audit_events (id, occurred_at, tenant_id, actor, \
                         credential_id, client_ip, user_agent, action, outcome, reason, \
                         request_id, target, chain_pos, chain_hash) ",
                    );
                    q.push_values(chunk, |mut b, (e, pos, hash)| {
                        b.push_bind(&e.id)
                            .push_bind(e.occurred_at.as_millis())
                            .push_bind(e.tenant.as_str())
                            .push_bind(e.actor.as_str())
                            .push_bind(&e.credential_id)
                            .push_bind(&e.client_ip)
                            .push_bind(&e.user_agent)
                            .push_bind(e.action.as_str())
                            .push_bind(e.outcome.as_str())
                            .push_bind(e.reason.as_ref().map(Reason::as_str))
                            .push_bind(&e.request_id)
                            .push_bind(&e.target)
                            .push_bind(*pos)
                            .push_bind(hash.to_vec());
                    });
                    q.push(" ON CONFLICT (id) DO NOTHING");
                    inserted += q.build().execute(&mut **tx).await?.rows_affected();
                }
            }
            if inserted != chained.len() as u64 {
                return Ok(false);
            }
            sqlx::query("UPDATE audit_chain_head SET pos = $1, hash = $2 WHERE id = 1")
                .bind(pos)
                .bind(prev.to_vec())
                .execute(&mut **tx)
                .await?;
            Ok(true)
        }

        #[async_trait::async_trait]
        impl $crate::AuditStore for $store {
            async fn append_audit_events(&self, events: &[AuditEvent]) -> Result<()> {
                // Chained (portcullis_core::audit_chain) in the same transaction: the head row
                // is taken first, so the writers of several nodes take turns on it and the
                // chain stays one line; requests never wait for it (the writer is a queue).
                if events.is_empty() {
                    return Ok(());
                }
                let mut pending: Vec<&AuditEvent> = events.iter().collect();
                // Twice at most: a retried batch whose first commit did succeed finds its ids
                // stored, and chains only the events that are not.
                // Through group commit: a flush queues with the request-path writes instead of
                // making them wait in SQLite's busy handler, and shares their fsync.
                for _ in 0..2 {
                    let mut writer = self.group.writer().await?;
                    let mut tx = writer.begin().await?;
                    if append_chained(&mut tx, &pending).await? {
                        tx.commit().await?;
                        self.group.durable(writer).await?;
                        return Ok(());
                    }
                    tx.rollback().await?;
                    drop(writer);
                    let mut q = sqlx::QueryBuilder::new("SELECT id FROM audit_events WHERE id IN (");
                    let mut list = q.separated(", ");
                    for e in &pending {
                        list.push_bind(e.id.clone());
                    }
                    q.push(")");
                    let stored: std::collections::HashSet<String> = q
                        .build()
                        .fetch_all(&self.pool)
                        .await?
                        .iter()
                        .map(|r| r.try_get::<String, _>("id"))
                        .collect::<std::result::Result<_, _>>()?;
                    pending.retain(|e| !stored.contains(&e.id));
                    if pending.is_empty() {
                        return Ok(());
                    }
                }
                Err(StoreError::Conflict)
            }

            async fn query_audit_events(&self, q: &AuditQuery) -> Result<Page<AuditEvent>> {
                let mut b = sqlx::QueryBuilder::new("SELECT * FROM audit_events WHERE tenant_id = ");
                b.push_bind(q.tenant.as_str().to_owned());
                if let Some(since) = q.since {
                    b.push(" AND occurred_at >= ").push_bind(since.as_millis());
                }
                if let Some(until) = q.until {
                    b.push(" AND occurred_at < ").push_bind(until.as_millis());
                }
                if let Some(action) = &q.action {
                    b.push(" AND action = ").push_bind(action.clone());
                }
                // Newest first; `seq` (the insertion order) breaks ties within a millisecond.
                push_keyset(&mut b, &q.page, "occurred_at", "seq", true);
                let rows = b
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| Ok((audit_event_from_row(r)?, r.try_get::<i64, _>("seq")?)))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, &q.page, |(e, seq)| PageKey {
                    at: e.occurred_at,
                    id: KeyId::Int(*seq),
                })
                .map(|(e, _)| e))
            }
        }

        fn alert_from_row(row: &$row) -> Result<AlertRecord> {
            let status: String = row.try_get("status")?;
            let shadow: i64 = row.try_get("shadow")?;
            Ok(AlertRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                rule: row.try_get("rule")?,
                subject: row.try_get("subject")?,
                status: portcullis_core::alert::AlertStatus::parse(&status)
                    .ok_or_else(|| corrupt("alert status", &status))?,
                shadow: shadow != 0,
                evidence: row.try_get("evidence")?,
                count: row.try_get("count")?,
                first_seen: Timestamp::from_millis(row.try_get("first_seen")?),
                last_seen: Timestamp::from_millis(row.try_get("last_seen")?),
                acknowledged_at: ts(row.try_get("acknowledged_at")?),
                acknowledged_by: row.try_get("acknowledged_by")?,
                resolved_at: ts(row.try_get("resolved_at")?),
                resolved_by: row.try_get("resolved_by")?,
            })
        }

        #[async_trait::async_trait]
        impl $crate::AlertStore for $store {
            async fn upsert_alert(&self, a: &AlertUpsert) -> Result<AlertRecord> {
                // The conflict target names the partial unique index `alerts_live`, so a
                // resolved alert never absorbs a new finding.
                sqlx::query(
                    "INSERT INTO alerts (id, tenant_id, rule, subject, status, shadow, evidence, \
                     count, first_seen, last_seen) \
                     VALUES ($1, $2, $3, $4, 'open', $5, $6, $7, $8, $8) \
                     ON CONFLICT (rule, tenant_id, subject, shadow) WHERE status <> 'resolved' \
                     DO UPDATE SET count = alerts.count + excluded.count, \
                     evidence = excluded.evidence, \
                     last_seen = CASE WHEN excluded.last_seen > alerts.last_seen \
                     THEN excluded.last_seen ELSE alerts.last_seen END \
                     RETURNING *",
                )
                .bind(&a.id)
                .bind(a.tenant.as_str())
                .bind(&a.rule)
                .bind(&a.subject)
                .bind(i64::from(a.shadow))
                .bind(&a.evidence)
                .bind(a.count.max(1))
                .bind(a.seen_at.as_millis())
                .fetch_one(&self.pool)
                .await
                .map_err(StoreError::from)
                .and_then(|row| alert_from_row(&row))
            }

            async fn list_alerts(
                &self,
                f: &AlertFilter,
                page: &PageRequest,
            ) -> Result<Page<AlertRecord>> {
                // Ordered by when an alert was opened (which never changes, unlike `last_seen`),
                // so a page boundary holds while findings keep updating alerts.
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM alerts WHERE 1 = 1");
                if let Some(tenant) = &f.tenant {
                    q.push(" AND tenant_id = ").push_bind(tenant.as_str().to_owned());
                }
                if let Some(status) = f.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(rule) = &f.rule {
                    q.push(" AND rule = ").push_bind(rule.clone());
                }
                push_keyset(&mut q, page, "first_seen", "id", true);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(alert_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |a| created_key(a.first_seen, &a.id)))
            }

            async fn get_alert(&self, tenant: Option<&TenantId>, id: &str) -> Result<Option<AlertRecord>> {
                sqlx::query("SELECT * FROM alerts WHERE id = $1 AND ($2 IS NULL OR tenant_id = $2)")
                    .bind(id)
                    .bind(tenant.map(TenantId::as_str))
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(alert_from_row)
                    .transpose()
            }

            async fn set_alert_status(
                &self,
                tenant: Option<&TenantId>,
                id: &str,
                from: portcullis_core::alert::AlertStatus,
                to: portcullis_core::alert::AlertStatus,
                by: &str,
                now: Timestamp,
            ) -> Result<bool> {
                use portcullis_core::alert::AlertStatus;
                let (ack_at, ack_by, res_at, res_by) = match to {
                    AlertStatus::Acknowledged => (Some(now.as_millis()), Some(by), None, None),
                    AlertStatus::Resolved => (None, None, Some(now.as_millis()), Some(by)),
                    AlertStatus::Open => (None, None, None, None),
                };
                let done = sqlx::query(
                    "UPDATE alerts SET status = $1, \
                     acknowledged_at = COALESCE($2, acknowledged_at), \
                     acknowledged_by = COALESCE($3, acknowledged_by), \
                     resolved_at = COALESCE($4, resolved_at), \
                     resolved_by = COALESCE($5, resolved_by) \
                     WHERE id = $6 AND status = $7 AND ($8 IS NULL OR tenant_id = $8)",
                )
                .bind(to.as_str())
                .bind(ack_at)
                .bind(ack_by)
                .bind(res_at)
                .bind(res_by)
                .bind(id)
                .bind(from.as_str())
                .bind(tenant.map(TenantId::as_str))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }

    };
}

pub(crate) use impl_audit_store;
