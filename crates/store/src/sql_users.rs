//! The SQL of [`crate::UserStore`]: users and their one-time tokens, expanded for each backend
//! beside `impl_sql_store!` (whose helpers `corrupt`, `ts`, `tenant_id`, `push_keyset` and
//! `created_key` it uses, and whose imports it shares). Kept apart from `sql.rs` so the users'
//! queries read as one unit. The users list pages by the one keyset rule of every admin list.
//!
//! Uniqueness of usernames and emails is the database's job (unique indexes on the normalised
//! forms), never a read-then-write here: two concurrent creations cannot both succeed. This
//! module must never see a password, only PHC strings, and never a one-time token, only digests.

macro_rules! impl_user_store {
    ($store:ty, $row:ty) => {
        /// A stored user status (also read by joins from other tables, `sql_sign_in`).
        fn user_status(text: &str) -> Result<UserStatus> {
            UserStatus::parse(text).map_err(|_| corrupt("user status", text))
        }

        fn user_from_row(row: &$row) -> Result<UserRecord> {
            let id: String = row.try_get("id")?;
            let username: String = row.try_get("username")?;
            let email: Option<String> = row.try_get("email")?;
            let status: String = row.try_get("status")?;
            let profile: String = row.try_get("profile")?;
            let verified: i64 = row.try_get("email_verified")?;
            Ok(UserRecord {
                id: UserId::parse(&id).map_err(|_| corrupt("user id", &id))?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                username: Username::parse(&username).map_err(|_| corrupt("username", &username))?,
                email: email
                    .map(|e| Email::parse(&e).map_err(|_| corrupt("email", &e)))
                    .transpose()?,
                email_verified: verified == 1,
                status: user_status(&status)?,
                profile: UserProfile::from_json(&profile)
                    .map_err(|_| corrupt("user profile", &profile))?,
                password_hash: row.try_get("password_hash")?,
                password_changed_at: ts(row.try_get("password_changed_at")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                last_login_at: ts(row.try_get("last_login_at")?),
            })
        }

        /// One `INSERT INTO users` for `users`: the single place that lists the columns, used by
        /// creation and import alike.
        fn user_insert(
            users: &[UserRecord],
        ) -> sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO users (id, tenant_id, username, username_normalized, email, \
                 email_normalized, email_verified, status, profile, password_hash, \
                 password_changed_at, created_at, updated_at, last_login_at) ",
            );
            q.push_values(users, |mut b, u| {
                b.push_bind(u.id.as_str())
                    .push_bind(u.tenant.as_str())
                    .push_bind(u.username.as_str())
                    .push_bind(u.username.normalized())
                    .push_bind(u.email.as_ref().map(|e| e.as_str()))
                    .push_bind(u.email.as_ref().map(|e| e.normalized()))
                    .push_bind(i64::from(u.email_verified))
                    .push_bind(u.status.as_str())
                    .push_bind(u.profile.to_json())
                    .push_bind(&u.password_hash)
                    .push_bind(u.password_changed_at.map(Timestamp::as_millis))
                    .push_bind(u.created_at.as_millis())
                    .push_bind(u.updated_at.as_millis())
                    .push_bind(u.last_login_at.map(Timestamp::as_millis));
            });
            q
        }

        fn user_token_from_row(row: &$row) -> Result<UserTokenRecord> {
            let user: String = row.try_get("user_id")?;
            let purpose: String = row.try_get("purpose")?;
            Ok(UserTokenRecord {
                digest: row.try_get("digest")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                user_id: UserId::parse(&user).map_err(|_| corrupt("user id", &user))?,
                purpose: TokenPurpose::parse(&purpose)
                    .ok_or_else(|| corrupt("token purpose", &purpose))?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                used_at: ts(row.try_get("used_at")?),
            })
        }

        /// `LIKE` pattern for "starts with `prefix`", with the pattern characters escaped.
        fn like_prefix(prefix: &str) -> String {
            let mut p = String::with_capacity(prefix.len() + 1);
            for c in prefix.chars() {
                if matches!(c, '%' | '_' | '\\') {
                    p.push('\\');
                }
                p.push(c);
            }
            p.push('%');
            p
        }

        #[async_trait::async_trait]
        impl $crate::UserStore for $store {
            async fn create_user(&self, user: &UserRecord) -> Result<()> {
                user_insert(std::slice::from_ref(user))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_user(&self, tenant: &TenantId, id: &UserId) -> Result<Option<UserRecord>> {
                sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn find_user_by_username(
                &self,
                tenant: &TenantId,
                username: &Username,
            ) -> Result<Option<UserRecord>> {
                sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND username_normalized = $2")
                    .bind(tenant.as_str())
                    .bind(username.normalized())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn find_user_by_email(
                &self,
                tenant: &TenantId,
                email: &Email,
            ) -> Result<Option<UserRecord>> {
                sqlx::query("SELECT * FROM users WHERE tenant_id = $1 AND email_normalized = $2")
                    .bind(tenant.as_str())
                    .bind(email.normalized())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(user_from_row)
                    .transpose()
            }

            async fn list_users(
                &self,
                tenant: &TenantId,
                filter: &UserFilter,
                page: &PageRequest,
            ) -> Result<Page<UserRecord>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM users WHERE tenant_id = ");
                q.push_bind(tenant.as_str());
                if let Some(status) = filter.status {
                    q.push(" AND status = ").push_bind(status.as_str());
                }
                if let Some(prefix) = &filter.prefix {
                    let pattern = like_prefix(prefix);
                    q.push(" AND (username_normalized LIKE ")
                        .push_bind(pattern.clone())
                        .push(" ESCAPE '\\' OR email_normalized LIKE ")
                        .push_bind(pattern)
                        .push(" ESCAPE '\\')");
                }
                push_keyset(&mut q, page, "created_at", "id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(user_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |u| {
                    created_key(u.created_at, u.id.as_str())
                }))
            }

            async fn update_user(&self, u: &UserRecord, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE users SET username = $1, username_normalized = $2, email = $3, \
                     email_normalized = $4, email_verified = $5, profile = $6, updated_at = $7 \
                     WHERE tenant_id = $8 AND id = $9",
                )
                .bind(u.username.as_str())
                .bind(u.username.normalized())
                .bind(u.email.as_ref().map(|e| e.as_str()))
                .bind(u.email.as_ref().map(|e| e.normalized()))
                .bind(i64::from(u.email_verified))
                .bind(u.profile.to_json())
                .bind(now.as_millis())
                .bind(u.tenant.as_str())
                .bind(u.id.as_str())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_user_status(
                &self,
                tenant: &TenantId,
                id: &UserId,
                status: UserStatus,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE users SET status = $1, updated_at = $2 WHERE tenant_id = $3 AND id = $4",
                )
                .bind(status.as_str())
                .bind(now.as_millis())
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_user_password(
                &self,
                tenant: &TenantId,
                id: &UserId,
                password_hash: &str,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE users SET password_hash = $1, password_changed_at = $2, \
                     updated_at = $2 WHERE tenant_id = $3 AND id = $4",
                )
                .bind(password_hash)
                .bind(now.as_millis())
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_user_login(
                &self,
                tenant: &TenantId,
                id: &UserId,
                now: Timestamp,
            ) -> Result<bool> {
                let mut writer = self.group.writer().await?;
                let done = sqlx::query(
                    "UPDATE users SET last_login_at = CASE WHEN last_login_at IS NULL \
                     OR last_login_at < $1 THEN $1 ELSE last_login_at END \
                     WHERE tenant_id = $2 AND id = $3",
                )
                .bind(now.as_millis())
                .bind(tenant.as_str())
                .bind(id.as_str())
                .execute(&mut *writer)
                .await?;
                self.group.durable_if_wrote(writer, done.rows_affected()).await
            }

            async fn delete_user(&self, tenant: &TenantId, id: &UserId) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                sqlx::query("DELETE FROM user_tokens WHERE tenant_id = $1 AND user_id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                let done = sqlx::query("DELETE FROM users WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id.as_str())
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_user_token(&self, t: &UserTokenRecord, now: Timestamp) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "DELETE FROM user_tokens WHERE expires_at <= $1 \
                     OR (user_id = $2 AND purpose = $3 AND used_at IS NULL)",
                )
                .bind(now.as_millis())
                .bind(t.user_id.as_str())
                .bind(t.purpose.as_str())
                .execute(&mut *tx)
                .await?;
                // The user must exist in this tenant: the foreign key alone would accept a user
                // of another tenant.
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM users WHERE tenant_id = $1 AND id = $2",
                )
                .bind(t.tenant.as_str())
                .bind(t.user_id.as_str())
                .fetch_optional(&mut *tx)
                .await?;
                if exists.is_none() {
                    tx.rollback().await?;
                    return Err(StoreError::NotFound);
                }
                sqlx::query(
                    "INSERT INTO user_tokens (digest, tenant_id, user_id, purpose, created_at, \
                     expires_at, used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&t.digest)
                .bind(t.tenant.as_str())
                .bind(t.user_id.as_str())
                .bind(t.purpose.as_str())
                .bind(t.created_at.as_millis())
                .bind(t.expires_at.as_millis())
                .bind(t.used_at.map(Timestamp::as_millis))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                tx.commit().await?;
                Ok(())
            }

            async fn find_user_token(
                &self,
                digest: &[u8],
                purpose: TokenPurpose,
                now: Timestamp,
            ) -> Result<Option<UserTokenRecord>> {
                sqlx::query(
                    "SELECT * FROM user_tokens WHERE digest = $1 AND purpose = $2 \
                     AND used_at IS NULL AND expires_at > $3",
                )
                .bind(digest)
                .bind(purpose.as_str())
                .bind(now.as_millis())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(user_token_from_row)
                .transpose()
            }

            async fn consume_user_token(
                &self,
                digest: &[u8],
                purpose: TokenPurpose,
                now: Timestamp,
            ) -> Result<Option<UserTokenRecord>> {
                sqlx::query(
                    "UPDATE user_tokens SET used_at = $1 WHERE digest = $2 AND purpose = $3 \
                     AND used_at IS NULL AND expires_at > $1 RETURNING *",
                )
                .bind(now.as_millis())
                .bind(digest)
                .bind(purpose.as_str())
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(user_token_from_row)
                .transpose()
            }
        }
    };
}

pub(crate) use impl_user_store;
