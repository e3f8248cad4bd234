//! The SQL of [`crate::WebhookStore`]: webhook endpoints and their delivery queue, expanded for
//! each backend beside `impl_sql_store!` (whose helpers `corrupt`, `ts`, `tenant_id`,
//! `push_keyset` and `created_key` it uses). Lists page by the one keyset rule of every admin
//! list.
//!
//! Claiming is one `UPDATE` whose `WHERE` repeats the "free lease" test on the row itself, so on
//! PostgreSQL two nodes racing for a row both re-check it after the first one's write and only
//! one gets it; SQLite has a single writer. Only the lease holder can record an outcome. This
//! module must never see a plaintext webhook secret: endpoints carry sealed ones. Alert
//! retention (`AlertRetentionStore`) lives here too, beside the deliveries it prunes.

macro_rules! impl_webhook_store {
    ($store:ty, $row:ty) => {
        use $crate::webhook_model::*;

        fn webhook_endpoint_from_row(row: &$row) -> Result<WebhookEndpointRecord> {
            Ok(WebhookEndpointRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                url: row.try_get("url")?,
                description: row.try_get("description")?,
                kek_id: row.try_get("kek_id")?,
                sealed_secret: row.try_get("sealed_secret")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                secret_rotated_at: Timestamp::from_millis(row.try_get("secret_rotated_at")?),
            })
        }

        /// One `INSERT INTO webhook_endpoints`: the single place that lists the columns, used by
        /// creation and import alike.
        fn webhook_endpoint_insert(
            endpoints: &[WebhookEndpointRecord],
        ) -> sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO webhook_endpoints (id, tenant_id, url, description, kek_id, \
                 sealed_secret, created_at, secret_rotated_at) ",
            );
            q.push_values(endpoints, |mut b, e| {
                b.push_bind(e.id.as_str())
                    .push_bind(e.tenant.as_str())
                    .push_bind(e.url.as_str())
                    .push_bind(e.description.as_str())
                    .push_bind(e.kek_id.as_str())
                    .push_bind(e.sealed_secret.as_slice())
                    .push_bind(e.created_at.as_millis())
                    .push_bind(e.secret_rotated_at.as_millis());
            });
            q
        }

        fn webhook_delivery_from_row(row: &$row) -> Result<WebhookDeliveryRecord> {
            let status: String = row.try_get("status")?;
            Ok(WebhookDeliveryRecord {
                id: row.try_get("id")?,
                endpoint_id: row.try_get("endpoint_id")?,
                endpoint_tenant: tenant_id(row.try_get("endpoint_tenant")?)?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                alert_id: row.try_get("alert_id")?,
                rule: row.try_get("rule")?,
                event_type: row.try_get("event_type")?,
                payload: row.try_get("payload")?,
                status: DeliveryStatus::parse(&status)
                    .ok_or_else(|| corrupt("delivery status", &status))?,
                attempts: row.try_get("attempts")?,
                next_attempt_at: Timestamp::from_millis(row.try_get("next_attempt_at")?),
                lease_owner: row.try_get("lease_owner")?,
                lease_until: ts(row.try_get("lease_until")?),
                last_error: row.try_get("last_error")?,
                last_status: row.try_get("last_status")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                finished_at: ts(row.try_get("finished_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::AlertRetentionStore for $store {
            async fn prune_alerts(&self, before: Timestamp) -> Result<(u64, u64)> {
                let mut tx = self.pool.begin().await?;
                let alerts = sqlx::query(
                    "DELETE FROM alerts WHERE status = 'resolved' AND resolved_at < $1",
                )
                .bind(before.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                let deliveries = sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE status = 'delivered' AND finished_at < $1",
                )
                .bind(before.as_millis())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                tx.commit().await?;
                Ok((alerts, deliveries))
            }
        }

        #[async_trait::async_trait]
        impl $crate::WebhookStore for $store {
            async fn create_webhook_endpoint(&self, e: &WebhookEndpointRecord) -> Result<()> {
                webhook_endpoint_insert(std::slice::from_ref(e))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn list_webhook_endpoints(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
            ) -> Result<Page<WebhookEndpointRecord>> {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT * FROM webhook_endpoints WHERE tenant_id = ",
                );
                q.push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "created_at", "id", true);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(webhook_endpoint_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |e| created_key(e.created_at, &e.id)))
            }

            async fn get_webhook_endpoint(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<WebhookEndpointRecord>> {
                sqlx::query("SELECT * FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(webhook_endpoint_from_row)
                    .transpose()
            }

            async fn delete_webhook_endpoint(&self, tenant: &TenantId, id: &str) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Explicitly, not only by the foreign key's cascade: SQLite enforces it only with
                // the pragma on, and the queue must never keep rows for a deleted endpoint.
                sqlx::query(
                    "DELETE FROM webhook_deliveries WHERE endpoint_id = $1 AND endpoint_tenant = $2",
                )
                .bind(id)
                .bind(tenant.as_str())
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_webhook_secret(
                &self,
                tenant: &TenantId,
                id: &str,
                kek_id: &str,
                sealed_secret: &[u8],
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET kek_id = $1, sealed_secret = $2, \
                     secret_rotated_at = $3 WHERE id = $4 AND tenant_id = $5",
                )
                .bind(kek_id)
                .bind(sealed_secret)
                .bind(now.as_millis())
                .bind(id)
                .bind(tenant.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn all_webhook_endpoints(&self) -> Result<Vec<WebhookEndpointRecord>> {
                sqlx::query("SELECT * FROM webhook_endpoints ORDER BY id")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(webhook_endpoint_from_row)
                    .collect()
            }

            async fn reseal_webhook_secret(
                &self,
                id: &str,
                old_kek: &str,
                new_kek: &str,
                sealed_secret: &[u8],
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_endpoints SET kek_id = $1, sealed_secret = $2 \
                     WHERE id = $3 AND kek_id = $4",
                )
                .bind(new_kek)
                .bind(sealed_secret)
                .bind(id)
                .bind(old_kek)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn webhook_endpoints_for(
                &self,
                tenant: &TenantId,
            ) -> Result<Vec<WebhookEndpointRecord>> {
                sqlx::query(
                    "SELECT * FROM webhook_endpoints WHERE tenant_id = $1 OR tenant_id = 'system' \
                     ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(webhook_endpoint_from_row)
                .collect()
            }

            async fn enqueue_webhook_deliveries(
                &self,
                deliveries: &[WebhookDeliveryRecord],
            ) -> Result<()> {
                if deliveries.is_empty() {
                    return Ok(());
                }
                let mut q = sqlx::QueryBuilder::new(
                    "INSERT INTO webhook_deliveries (id, endpoint_id, endpoint_tenant, tenant_id, \
                     alert_id, rule, event_type, payload, status, attempts, next_attempt_at, \
                     lease_owner, lease_until, last_error, last_status, created_at, finished_at) ",
                );
                q.push_values(deliveries, |mut b, d| {
                    b.push_bind(d.id.as_str())
                        .push_bind(d.endpoint_id.as_str())
                        .push_bind(d.endpoint_tenant.as_str())
                        .push_bind(d.tenant.as_str())
                        .push_bind(d.alert_id.as_str())
                        .push_bind(d.rule.as_str())
                        .push_bind(d.event_type.as_str())
                        .push_bind(d.payload.as_str())
                        .push_bind(d.status.as_str())
                        .push_bind(d.attempts)
                        .push_bind(d.next_attempt_at.as_millis())
                        .push_bind(d.lease_owner.as_deref())
                        .push_bind(d.lease_until.map(Timestamp::as_millis))
                        .push_bind(d.last_error.as_deref())
                        .push_bind(d.last_status)
                        .push_bind(d.created_at.as_millis())
                        .push_bind(d.finished_at.map(Timestamp::as_millis));
                });
                q.build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn claim_webhook_deliveries(
                &self,
                owner: &str,
                now: Timestamp,
                lease_until: Timestamp,
                limit: u32,
            ) -> Result<Vec<WebhookDeliveryRecord>> {
                // The outer WHERE repeats the free-lease test: a row another node claimed between
                // the subquery's read and this write no longer matches, and is left to it.
                sqlx::query(
                    "UPDATE webhook_deliveries SET lease_owner = $1, lease_until = $2, \
                     attempts = attempts + 1 \
                     WHERE id IN (SELECT id FROM webhook_deliveries WHERE status = 'pending' \
                       AND next_attempt_at <= $3 AND (lease_until IS NULL OR lease_until <= $3) \
                       ORDER BY next_attempt_at, id LIMIT $4) \
                     AND status = 'pending' AND (lease_until IS NULL OR lease_until <= $3) \
                     RETURNING *",
                )
                .bind(owner)
                .bind(lease_until.as_millis())
                .bind(now.as_millis())
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(webhook_delivery_from_row)
                .collect()
            }

            async fn finish_webhook_attempt(
                &self,
                id: &str,
                owner: &str,
                outcome: &AttemptOutcome,
                http_status: Option<u16>,
                error: Option<&str>,
                now: Timestamp,
            ) -> Result<bool> {
                let (status, next, finished) = match outcome {
                    AttemptOutcome::Delivered => (DeliveryStatus::Delivered, None, Some(now)),
                    AttemptOutcome::Retry { at } => (DeliveryStatus::Pending, Some(*at), None),
                    AttemptOutcome::Dead => (DeliveryStatus::Dead, None, Some(now)),
                };
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET status = $1, \
                     next_attempt_at = COALESCE($2, next_attempt_at), finished_at = $3, \
                     last_status = $4, last_error = $5, lease_owner = NULL, lease_until = NULL \
                     WHERE id = $6 AND lease_owner = $7 AND status = 'pending'",
                )
                .bind(status.as_str())
                .bind(next.map(Timestamp::as_millis))
                .bind(finished.map(Timestamp::as_millis))
                .bind(http_status.map(i64::from))
                .bind(error)
                .bind(id)
                .bind(owner)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_webhook_deliveries(
                &self,
                f: &DeliveryFilter,
                page: &PageRequest,
            ) -> Result<Page<WebhookDeliveryRecord>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM webhook_deliveries WHERE 1 = 1");
                if let Some(t) = &f.endpoint_tenant {
                    q.push(" AND endpoint_tenant = ").push_bind(t.as_str().to_owned());
                }
                if let Some(s) = f.status {
                    q.push(" AND status = ").push_bind(s.as_str());
                }
                if let Some(e) = &f.endpoint_id {
                    q.push(" AND endpoint_id = ").push_bind(e.clone());
                }
                push_keyset(&mut q, page, "created_at", "id", true);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(webhook_delivery_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |d| created_key(d.created_at, &d.id)))
            }

            async fn get_webhook_delivery(
                &self,
                endpoint_tenant: Option<&TenantId>,
                id: &str,
            ) -> Result<Option<WebhookDeliveryRecord>> {
                sqlx::query(
                    "SELECT * FROM webhook_deliveries WHERE id = $1 \
                     AND ($2 IS NULL OR endpoint_tenant = $2)",
                )
                .bind(id)
                .bind(endpoint_tenant.map(TenantId::as_str))
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(webhook_delivery_from_row)
                .transpose()
            }

            async fn redeliver_webhook(
                &self,
                endpoint_tenant: Option<&TenantId>,
                id: &str,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, \
                     next_attempt_at = $1, finished_at = NULL, lease_owner = NULL, \
                     lease_until = NULL \
                     WHERE id = $2 AND status = 'dead' AND ($3 IS NULL OR endpoint_tenant = $3)",
                )
                .bind(now.as_millis())
                .bind(id)
                .bind(endpoint_tenant.map(TenantId::as_str))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }
        }
    };
}

pub(crate) use impl_webhook_store;
