//! The SQL of [`crate::DeviceAuthorizationStore`] (RFC 8628 device sign-in) and
//! [`crate::UserRoleStore`] (admin roles held by users), expanded for each backend beside
//! `impl_sql_store!`.
//!
//! Deciding, recording a poll and using a device code are compare-and-swap updates, so two
//! nodes racing the same code see one outcome. This module must never decide what a poll gets
//! or who may approve (core and the service do), only store it and make each change happen once.

macro_rules! impl_device_store {
    ($store:ty, $row:ty) => {
        fn device_from_row(row: &$row) -> Result<$crate::DeviceAuthorizationRecord> {
            let status: String = row.try_get("status")?;
            let interval: i64 = row.try_get("interval_secs")?;
            let scope: String = row.try_get("scope")?;
            Ok($crate::DeviceAuthorizationRecord {
                device_digest: row.try_get("device_digest")?,
                user_code_digest: row.try_get("user_code_digest")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                client_id: stored_client_id(row.try_get("client_id")?)?,
                scope: scope
                    .split(' ')
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
                status: portcullis_core::device::DeviceStatus::parse(&status)
                    .ok_or_else(|| corrupt("device authorization status", &status))?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                interval_secs: u64::try_from(interval)
                    .map_err(|_| corrupt("device polling interval", &interval.to_string()))?,
                last_polled_at: ts(row.try_get("last_polled_at")?),
                user_id: row
                    .try_get::<Option<String>, _>("user_id")?
                    .map(stored_user_id)
                    .transpose()?,
                sid: row
                    .try_get::<Option<String>, _>("sid")?
                    .map(stored_session_id)
                    .transpose()?,
                auth_time: ts(row.try_get("auth_time")?),
                decided_at: ts(row.try_get("decided_at")?),
            })
        }

        fn user_role_from_row(row: &$row) -> Result<$crate::UserAdminRole> {
            let role: String = row.try_get("role")?;
            Ok($crate::UserAdminRole {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                user_id: stored_user_id(row.try_get("user_id")?)?,
                role: portcullis_core::admin::AdminRole::parse(&role)
                    .ok_or_else(|| corrupt("user admin role", &role))?,
                granted_at: Timestamp::from_millis(row.try_get("granted_at")?),
                granted_by: row.try_get("granted_by")?,
            })
        }

        fn device_interval(secs: u64) -> i64 {
            i64::try_from(secs).unwrap_or(i64::MAX)
        }

        #[async_trait::async_trait]
        impl $crate::DeviceAuthorizationStore for $store {
            async fn insert_device_authorization(
                &self,
                r: &$crate::DeviceAuthorizationRecord,
            ) -> Result<()> {
                sqlx::query(
                    "INSERT INTO device_authorizations (device_digest, user_code_digest, \
                     tenant_id, client_id, scope, status, created_at, expires_at, \
                     interval_secs, last_polled_at, user_id, sid, auth_time, decided_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
                )
                .bind(&r.device_digest)
                .bind(&r.user_code_digest)
                .bind(r.tenant.as_str())
                .bind(r.client_id.as_str())
                .bind(r.scope.join(" "))
                .bind(r.status.as_str())
                .bind(r.created_at.as_millis())
                .bind(r.expires_at.as_millis())
                .bind(device_interval(r.interval_secs))
                .bind(r.last_polled_at.map(Timestamp::as_millis))
                .bind(r.user_id.as_ref().map(portcullis_core::user::UserId::as_str))
                .bind(r.sid.as_ref().map(portcullis_core::session::SessionId::as_str))
                .bind(r.auth_time.map(Timestamp::as_millis))
                .bind(r.decided_at.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_device_authorization(
                &self,
                device_digest: &[u8],
            ) -> Result<Option<$crate::DeviceAuthorizationRecord>> {
                let row = sqlx::query("SELECT * FROM device_authorizations WHERE device_digest = $1")
                    .bind(device_digest)
                    .fetch_optional(&self.pool)
                    .await?;
                row.as_ref().map(device_from_row).transpose()
            }

            async fn find_pending_device_authorization(
                &self,
                user_code_digest: &[u8],
                now: Timestamp,
            ) -> Result<Option<$crate::DeviceAuthorizationRecord>> {
                let row = sqlx::query(
                    "SELECT * FROM device_authorizations WHERE user_code_digest = $1 \
                     AND status = 'pending' AND expires_at > $2",
                )
                .bind(user_code_digest)
                .bind(now.as_millis())
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(device_from_row).transpose()
            }

            async fn decide_device_authorization(
                &self,
                user_code_digest: &[u8],
                d: &$crate::DeviceDecision,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE device_authorizations SET status = $2, user_id = $3, sid = $4, \
                     auth_time = $5, decided_at = $6 \
                     WHERE user_code_digest = $1 AND status = 'pending' AND expires_at > $6",
                )
                .bind(user_code_digest)
                .bind(if d.approve { "approved" } else { "denied" })
                .bind(d.user_id.as_str())
                .bind(d.sid.as_str())
                .bind(d.auth_time.as_millis())
                .bind(d.at.as_millis())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_device_poll(
                &self,
                device_digest: &[u8],
                seen_last_poll: Option<Timestamp>,
                now: Timestamp,
                interval_secs: u64,
            ) -> Result<bool> {
                // NULL never equals NULL: the first poll is matched by IS NULL instead.
                let done = match seen_last_poll {
                    Some(seen) => {
                        sqlx::query(
                            "UPDATE device_authorizations SET last_polled_at = $2, \
                             interval_secs = $3 WHERE device_digest = $1 \
                             AND last_polled_at = $4",
                        )
                        .bind(device_digest)
                        .bind(now.as_millis())
                        .bind(device_interval(interval_secs))
                        .bind(seen.as_millis())
                        .execute(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query(
                            "UPDATE device_authorizations SET last_polled_at = $2, \
                             interval_secs = $3 WHERE device_digest = $1 \
                             AND last_polled_at IS NULL",
                        )
                        .bind(device_digest)
                        .bind(now.as_millis())
                        .bind(device_interval(interval_secs))
                        .execute(&self.pool)
                        .await?
                    }
                };
                Ok(done.rows_affected() == 1)
            }

            async fn use_device_authorization(
                &self,
                device_digest: &[u8],
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE device_authorizations SET status = 'used', last_polled_at = $2 \
                     WHERE device_digest = $1 AND status = 'approved' AND expires_at > $2",
                )
                .bind(device_digest)
                .bind(now.as_millis())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn prune_device_authorizations(&self, before: Timestamp) -> Result<u64> {
                let done = sqlx::query("DELETE FROM device_authorizations WHERE expires_at <= $1")
                    .bind(before.as_millis())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::UserRoleStore for $store {
            async fn put_user_admin_role(&self, r: &$crate::UserAdminRole) -> Result<()> {
                sqlx::query(
                    "INSERT INTO user_admin_roles (tenant_id, user_id, role, granted_at, \
                     granted_by) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, user_id) DO UPDATE SET role = excluded.role, \
                     granted_at = excluded.granted_at, granted_by = excluded.granted_by",
                )
                .bind(r.tenant.as_str())
                .bind(r.user_id.as_str())
                .bind(r.role.as_str())
                .bind(r.granted_at.as_millis())
                .bind(&r.granted_by)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_user_admin_role(
                &self,
                tenant: &TenantId,
                user_id: &str,
            ) -> Result<Option<$crate::UserAdminRole>> {
                let row = sqlx::query(
                    "SELECT * FROM user_admin_roles WHERE tenant_id = $1 AND user_id = $2",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .fetch_optional(&self.pool)
                .await?;
                row.as_ref().map(user_role_from_row).transpose()
            }

            async fn delete_user_admin_role(
                &self,
                tenant: &TenantId,
                user_id: &str,
            ) -> Result<bool> {
                let done =
                    sqlx::query("DELETE FROM user_admin_roles WHERE tenant_id = $1 AND user_id = $2")
                        .bind(tenant.as_str())
                        .bind(user_id)
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_user_admin_roles(
                &self,
                tenant: &TenantId,
            ) -> Result<Vec<$crate::UserAdminRole>> {
                let rows = sqlx::query(
                    "SELECT * FROM user_admin_roles WHERE tenant_id = $1 ORDER BY user_id",
                )
                .bind(tenant.as_str())
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(user_role_from_row).collect()
            }
        }
    };
}

pub(crate) use impl_device_store;
