//! The one SQL implementation of the sign-in state traits ([`crate::SessionStore`],
//! [`crate::AuthCodeStore`], [`crate::RefreshTokenStore`], [`crate::ConsentStore`]), expanded
//! for each backend beside `impl_sql_store!` (whose row helpers and revocation-log append it
//! uses, so every revocation here lands in the log in the caller's transaction).
//!
//! Single use is made atomic by compare-and-swap updates (`... WHERE consumed_at IS NULL`,
//! `... WHERE rotated_at IS NULL`), and a rotation first updates its family's row, so on
//! PostgreSQL a rotation and a revocation of the same family queue on that row's lock and on
//! SQLite on the database's write lock: a family is never rotated after its revocation
//! committed. This module must never decide whether a code, session or token is acceptable
//! (core does), only make each change happen once.

macro_rules! impl_sign_in_store {
    ($store:ty, $row:ty) => {
        use $crate::request_reads::Bind;
        use $crate::sign_in_model::*;
        use portcullis_core::refresh::FamilyId;
        use portcullis_core::session::SessionId;

        // Read on the request path too (`request_reads.rs`), so by name from any driver's row.
        fn session_from_row(row: &dyn Columns) -> Result<SessionRecord> {
            Ok(SessionRecord {
                digest: row.blob("digest")?,
                id: stored_session_id(row.text("id")?)?,
                tenant: tenant_id(row.text("tenant_id")?)?,
                user_id: stored_user_id(row.text("user_id")?)?,
                auth_time: Timestamp::from_millis(row.int("auth_time")?),
                amr: list_col(row.text("amr")?),
                acr: row.opt_text("acr")?,
                created_at: Timestamp::from_millis(row.int("created_at")?),
                last_seen_at: Timestamp::from_millis(row.int("last_seen_at")?),
                idle_expires_at: Timestamp::from_millis(row.int("idle_expires_at")?),
                absolute_expires_at: Timestamp::from_millis(row.int("absolute_expires_at")?),
                revoked_at: ts(row.opt_int("revoked_at")?),
            })
        }

        fn session_with_user_status(
            row: &dyn Columns,
        ) -> Result<(SessionRecord, Option<portcullis_core::user::UserStatus>)> {
            Ok((session_from_row(row)?, user_status_of(row)?))
        }

        fn refresh_token_read(row: &dyn Columns) -> Result<RefreshTokenRead> {
            let family = family_from_row(row)?;
            let token = RefreshTokenRecord {
                digest: row.blob("token_digest")?,
                family_id: family.id.clone(),
                generation: row.int("generation")?,
                created_at: Timestamp::from_millis(row.int("token_created_at")?),
                rotated_at: ts(row.opt_int("rotated_at")?),
                successor_digest: row.opt_blob("successor_digest")?,
            };
            Ok(RefreshTokenRead {
                token,
                family,
                user_status: user_status_of(row)?,
            })
        }

        fn code_from_row(row: &$row) -> Result<AuthCodeRecord> {
            let jtis: Option<String> = row.try_get("issued_jtis")?;
            let until: Option<i64> = row.try_get("issued_tokens_expire_at")?;
            let issued = match (jtis, until) {
                (Some(jtis), Some(until)) => Some(CodeIssuance {
                    jtis: list_col(jtis),
                    tokens_expire_at: Timestamp::from_millis(until),
                    family_id: row
                        .try_get::<Option<String>, _>("issued_family_id")?
                        .map(stored_family_id)
                        .transpose()?,
                }),
                _ => None,
            };
            Ok(AuthCodeRecord {
                digest: row.try_get("digest")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                client_id: stored_client_id(row.try_get("client_id")?)?,
                redirect_uri: row.try_get("redirect_uri")?,
                code_challenge: row.try_get("code_challenge")?,
                nonce: row.try_get("nonce")?,
                scope: list_col(row.try_get("scope")?),
                user_id: stored_user_id(row.try_get("user_id")?)?,
                sid: stored_session_id(row.try_get("sid")?)?,
                auth_time: Timestamp::from_millis(row.try_get("auth_time")?),
                acr: row.try_get("acr")?,
                amr: list_col(row.try_get("amr")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: Timestamp::from_millis(row.try_get("expires_at")?),
                consumed_at: ts(row.try_get("consumed_at")?),
                issued,
                dpop_jkt: row.try_get("dpop_jkt")?,
            })
        }

        fn family_from_row(row: &dyn Columns) -> Result<RefreshFamilyRecord> {
            Ok(RefreshFamilyRecord {
                id: stored_family_id(row.text("id")?)?,
                tenant: tenant_id(row.text("tenant_id")?)?,
                client_id: stored_client_id(row.text("client_id")?)?,
                user_id: stored_user_id(row.text("user_id")?)?,
                sid: row.opt_text("sid")?.map(stored_session_id).transpose()?,
                scope: list_col(row.text("scope")?),
                auth_time: Timestamp::from_millis(row.int("auth_time")?),
                acr: row.opt_text("acr")?,
                amr: list_col(row.text("amr")?),
                created_at: Timestamp::from_millis(row.int("created_at")?),
                idle_expires_at: Timestamp::from_millis(row.int("idle_expires_at")?),
                absolute_expires_at: Timestamp::from_millis(row.int("absolute_expires_at")?),
                revoked_at: ts(row.opt_int("revoked_at")?),
                revoked_reason: row.opt_text("revoked_reason")?,
                dpop_jkt: row.opt_text("dpop_jkt")?,
                cert_x5t: row.opt_text("cert_x5t")?,
            })
        }

        fn consent_from_row(row: &$row) -> Result<ConsentRecord> {
            Ok(ConsentRecord {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                user_id: stored_user_id(row.try_get("user_id")?)?,
                client_id: stored_client_id(row.try_get("client_id")?)?,
                scopes: list_col(row.try_get("scopes")?),
                granted_at: Timestamp::from_millis(row.try_get("granted_at")?),
            })
        }

        /// A `session` or `family` entry: covers what was issued until `now`, and matters until
        /// the session or family could last have issued a token plus that token's lifetime.
        fn sign_in_entry(
            tenant: &TenantId,
            kind: RevocationKind,
            subject: String,
            reason: &str,
            now: Timestamp,
            absolute_expires_at: i64,
            token_lifetime: std::time::Duration,
        ) -> NewRevocation {
            NewRevocation {
                tenant: tenant.clone(),
                kind,
                subject,
                revoked_before: Some(now),
                expires_at: Some(
                    Timestamp::from_millis(absolute_expires_at).saturating_add(token_lifetime),
                ),
                reason: Some(reason.to_owned()),
            }
        }

        /// Runs an `UPDATE ... RETURNING id, absolute_expires_at` on sessions or families and
        /// appends one `kind` entry per row changed, in `tx`. Returns the ids (sorted) and the
        /// last position appended.
        async fn revoke_logged<'q>(
            tx: &mut sqlx::Transaction<'_, Db>,
            update: sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>,
            tenant: &TenantId,
            kind: RevocationKind,
            reason: &str,
            now: Timestamp,
            token_lifetime: std::time::Duration,
        ) -> Result<(Vec<String>, Option<RevocationEntry>)> {
            let rows = update.fetch_all(&mut **tx).await?;
            let mut changed = rows
                .iter()
                .map(|row| Ok((row.try_get::<String, _>("id")?, row.try_get::<i64, _>("absolute_expires_at")?)))
                .collect::<Result<Vec<_>>>()?;
            changed.sort();
            let mut last = None;
            for (id, absolute) in &changed {
                let entry =
                    sign_in_entry(tenant, kind, id.clone(), reason, now, *absolute, token_lifetime);
                last = Some(append_revocation_in(tx, &entry, now).await?);
            }
            Ok((changed.into_iter().map(|(id, _)| id).collect(), last))
        }


        /// Which of a tenant's unrevoked refresh-token families [`revoke_families`] revokes.
        enum Families<'a> {
            Id(&'a str),
            Session(&'a str),
            User(&'a str),
            UserClient(&'a str, &'a str),
        }

        /// Revokes the selected unrevoked families of `tenant`, appending a `family` entry per
        /// family in `tx`: the one place refresh-token families are revoked. Returns the last
        /// entry appended, if any.
        async fn revoke_families(
            tx: &mut sqlx::Transaction<'_, Db>,
            tenant: &TenantId,
            which: Families<'_>,
            reason: &str,
            now: Timestamp,
            token_lifetime: std::time::Duration,
        ) -> Result<Option<RevocationEntry>> {
            let mut q = sqlx::QueryBuilder::new("UPDATE refresh_families SET revoked_at = ");
            q.push_bind(now.as_millis())
                .push(", revoked_reason = ")
                .push_bind(reason.to_owned())
                .push(" WHERE tenant_id = ")
                .push_bind(tenant.as_str().to_owned());
            match which {
                Families::Id(id) => {
                    q.push(" AND id = ").push_bind(id.to_owned());
                }
                Families::Session(sid) => {
                    q.push(" AND sid = ").push_bind(sid.to_owned());
                }
                Families::User(user) => {
                    q.push(" AND user_id = ").push_bind(user.to_owned());
                }
                Families::UserClient(user, client) => {
                    q.push(" AND user_id = ")
                        .push_bind(user.to_owned())
                        .push(" AND client_id = ")
                        .push_bind(client.to_owned());
                }
            }
            q.push(" AND revoked_at IS NULL RETURNING id, absolute_expires_at");
            let (_, last) = revoke_logged(
                tx,
                q.build(),
                tenant,
                RevocationKind::Family,
                reason,
                now,
                token_lifetime,
            )
            .await?;
            Ok(last)
        }

        #[async_trait::async_trait]
        impl $crate::SessionStore for $store {
            async fn insert_session(&self, s: &SessionRecord) -> Result<()> {
                let mut writer = self.group.writer().await?;
                sqlx::query(
                    "INSERT INTO sign_in_sessions (digest, id, tenant_id, user_id, auth_time, \
                     amr, acr, created_at, last_seen_at, idle_expires_at, absolute_expires_at, \
                     revoked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
                )
                .bind(&s.digest)
                .bind(s.id.as_str())
                .bind(s.tenant.as_str())
                .bind(s.user_id.as_str())
                .bind(s.auth_time.as_millis())
                .bind(s.amr.join(" "))
                .bind(&s.acr)
                .bind(s.created_at.as_millis())
                .bind(s.last_seen_at.as_millis())
                .bind(s.idle_expires_at.as_millis())
                .bind(s.absolute_expires_at.as_millis())
                .bind(s.revoked_at.map(Timestamp::as_millis))
                .execute(&mut *writer)
                .await
                .map_err(StoreError::from_write)?;
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn get_session(&self, digest: &[u8]) -> Result<Option<SessionRecord>> {
                // Every request with a session cookie reads it (`request_reads.rs`).
                request_row(
                    &self.readers,
                    "SELECT * FROM sign_in_sessions WHERE digest = $1",
                    &[Bind::Blob(digest)],
                    session_from_row,
                )
                .await
            }

            async fn get_session_by_id(
                &self,
                tenant: &TenantId,
                sid: &str,
            ) -> Result<Option<SessionRecord>> {
                sqlx::query("SELECT * FROM sign_in_sessions WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(sid)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(|row| session_from_row(row))
                    .transpose()
            }

            async fn get_session_with_user_status(
                &self,
                tenant: &TenantId,
                sid: &str,
            ) -> Result<Option<(SessionRecord, Option<portcullis_core::user::UserStatus>)>> {
                request_row(
                    &self.readers,
                    "SELECT s.*, u.status AS user_status FROM sign_in_sessions s \
                     LEFT JOIN users u ON u.id = s.user_id AND u.tenant_id = s.tenant_id \
                     WHERE s.tenant_id = $1 AND s.id = $2",
                    &[Bind::Text(tenant.as_str()), Bind::Text(sid)],
                    session_with_user_status,
                )
                .await
            }

            async fn touch_session(
                &self,
                digest: &[u8],
                last_seen_at: Timestamp,
                idle_expires_at: Timestamp,
            ) -> Result<bool> {
                let mut writer = self.group.writer().await?;
                let done = sqlx::query(
                    "UPDATE sign_in_sessions SET \
                     last_seen_at = CASE WHEN last_seen_at < $1 THEN $1 ELSE last_seen_at END, \
                     idle_expires_at = CASE WHEN idle_expires_at < $2 THEN $2 \
                     ELSE idle_expires_at END \
                     WHERE digest = $3 AND revoked_at IS NULL",
                )
                .bind(last_seen_at.as_millis())
                .bind(idle_expires_at.as_millis())
                .bind(digest)
                .execute(&mut *writer)
                .await?;
                self.group.durable_if_wrote(writer, done.rows_affected()).await
            }

            async fn list_user_sessions(
                &self,
                tenant: &TenantId,
                user_id: &str,
            ) -> Result<Vec<SessionRecord>> {
                sqlx::query(
                    "SELECT * FROM sign_in_sessions WHERE tenant_id = $1 AND user_id = $2 \
                     AND revoked_at IS NULL ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| session_from_row(row))
                .collect()
            }

            async fn revoke_session(
                &self,
                tenant: &TenantId,
                sid: &str,
                reason: &str,
                now: Timestamp,
                token_lifetime: std::time::Duration,
            ) -> Result<Option<RevocationEntry>> {
                let mut tx = self.pool.begin().await?;
                let (_, session) = revoke_logged(
                    &mut tx,
                    sqlx::query(
                        "UPDATE sign_in_sessions SET revoked_at = $1 WHERE tenant_id = $2 \
                         AND id = $3 AND revoked_at IS NULL RETURNING id, absolute_expires_at",
                    )
                    .bind(now.as_millis())
                    .bind(tenant.as_str())
                    .bind(sid),
                    tenant,
                    RevocationKind::Session,
                    reason,
                    now,
                    token_lifetime,
                )
                .await?;
                let Some(session) = session else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let family =
                    revoke_families(&mut tx, tenant, Families::Session(sid), reason, now, token_lifetime)
                        .await?;
                tx.commit().await?;
                self.feed.publish(family.map_or(session.seq, |f| f.seq));
                Ok(Some(session))
            }

            async fn revoke_user_sessions(
                &self,
                tenant: &TenantId,
                user_id: &str,
                reason: &str,
                now: Timestamp,
                token_lifetime: std::time::Duration,
            ) -> Result<Vec<String>> {
                let mut tx = self.pool.begin().await?;
                let (sids, session) = revoke_logged(
                    &mut tx,
                    sqlx::query(
                        "UPDATE sign_in_sessions SET revoked_at = $1 WHERE tenant_id = $2 \
                         AND user_id = $3 AND revoked_at IS NULL \
                         RETURNING id, absolute_expires_at",
                    )
                    .bind(now.as_millis())
                    .bind(tenant.as_str())
                    .bind(user_id),
                    tenant,
                    RevocationKind::Session,
                    reason,
                    now,
                    token_lifetime,
                )
                .await?;
                let family =
                    revoke_families(&mut tx, tenant, Families::User(user_id), reason, now, token_lifetime)
                        .await?;
                tx.commit().await?;
                if let Some(last) = family.or(session) {
                    self.feed.publish(last.seq);
                }
                Ok(sids)
            }

            async fn prune_sessions(&self, before: Timestamp) -> Result<u64> {
                let done =
                    sqlx::query("DELETE FROM sign_in_sessions WHERE absolute_expires_at <= $1")
                        .bind(before.as_millis())
                        .execute(&self.pool)
                        .await?;
                Ok(done.rows_affected())
            }
        }

        #[async_trait::async_trait]
        impl $crate::AuthCodeStore for $store {
            async fn insert_code(&self, c: &AuthCodeRecord) -> Result<()> {
                let mut writer = self.group.writer().await?;
                sqlx::query(
                    "INSERT INTO authorization_codes (digest, tenant_id, client_id, \
                     redirect_uri, code_challenge, nonce, scope, user_id, sid, auth_time, acr, \
                     amr, created_at, expires_at, dpop_jkt) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
                )
                .bind(&c.digest)
                .bind(c.tenant.as_str())
                .bind(c.client_id.as_str())
                .bind(&c.redirect_uri)
                .bind(&c.code_challenge)
                .bind(&c.nonce)
                .bind(c.scope.join(" "))
                .bind(c.user_id.as_str())
                .bind(c.sid.as_str())
                .bind(c.auth_time.as_millis())
                .bind(&c.acr)
                .bind(c.amr.join(" "))
                .bind(c.created_at.as_millis())
                .bind(c.expires_at.as_millis())
                .bind(&c.dpop_jkt)
                .execute(&mut *writer)
                .await
                .map_err(StoreError::from_write)?;
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn get_code(&self, digest: &[u8]) -> Result<Option<AuthCodeRecord>> {
                sqlx::query("SELECT * FROM authorization_codes WHERE digest = $1")
                    .bind(digest)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(code_from_row)
                    .transpose()
            }

            async fn consume_code(&self, digest: &[u8], now: Timestamp) -> Result<CodeConsumption> {
                // The compare-and-swap: one statement, so on PostgreSQL a racing redemption
                // waits for this row and then finds it consumed.
                let mut writer = self.group.writer().await?;
                let first = sqlx::query(
                    "UPDATE authorization_codes SET consumed_at = $1 WHERE digest = $2 \
                     AND consumed_at IS NULL AND expires_at > $1 RETURNING *",
                )
                .bind(now.as_millis())
                .bind(digest)
                .fetch_optional(&mut *writer)
                .await?;
                // Only a statement that changed a row has anything to make durable.
                if let Some(row) = first {
                    self.group.durable(writer).await?;
                    return Ok(CodeConsumption::Redeemed(code_from_row(&row)?));
                }
                let replay = sqlx::query(
                    "UPDATE authorization_codes SET replayed_at = COALESCE(replayed_at, $1) \
                     WHERE digest = $2 AND consumed_at IS NOT NULL RETURNING *",
                )
                .bind(now.as_millis())
                .bind(digest)
                .fetch_optional(&mut *writer)
                .await?;
                if let Some(row) = replay {
                    self.group.durable(writer).await?;
                    return Ok(CodeConsumption::AlreadyUsed(code_from_row(&row)?));
                }
                drop(writer);
                let exists: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM authorization_codes WHERE digest = $1",
                )
                .bind(digest)
                .fetch_optional(&self.pool)
                .await?;
                Ok(if exists.is_some() {
                    CodeConsumption::Expired
                } else {
                    CodeConsumption::NotFound
                })
            }

            async fn record_code_issuance(
                &self,
                digest: &[u8],
                issued: &CodeIssuance,
            ) -> Result<bool> {
                let mut writer = self.group.writer().await?;
                let replayed: Option<Option<i64>> = sqlx::query_scalar(
                    "UPDATE authorization_codes SET issued_jtis = $1, \
                     issued_tokens_expire_at = $2, issued_family_id = $3 \
                     WHERE digest = $4 AND consumed_at IS NOT NULL RETURNING replayed_at",
                )
                .bind(issued.jtis.join(" "))
                .bind(issued.tokens_expire_at.as_millis())
                .bind(issued.family_id.as_ref().map(FamilyId::as_str))
                .bind(digest)
                .fetch_optional(&mut *writer)
                .await?;
                if replayed.is_some() {
                    self.group.durable(writer).await?;
                }
                match replayed {
                    None => Err(StoreError::NotFound),
                    Some(at) => Ok(at.is_some()),
                }
            }

            async fn prune_codes(&self, before: Timestamp) -> Result<u64> {
                let done = sqlx::query("DELETE FROM authorization_codes WHERE expires_at <= $1")
                    .bind(before.as_millis())
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected())
            }
        }

        /// The `user_status` column a read joined from `users` (NULL: no such user).
        fn user_status_of(row: &dyn Columns) -> Result<Option<portcullis_core::user::UserStatus>> {
            row.opt_text("user_status")?
                .as_deref()
                .map(user_status)
                .transpose()
        }

        async fn insert_refresh_token_in(
            tx: &mut sqlx::Transaction<'_, Db>,
            t: &RefreshTokenRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO refresh_tokens (digest, family_id, generation, created_at, \
                 rotated_at, successor_digest) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&t.digest)
            .bind(t.family_id.as_str())
            .bind(t.generation)
            .bind(t.created_at.as_millis())
            .bind(t.rotated_at.map(Timestamp::as_millis))
            .bind(&t.successor_digest)
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_write)?;
            Ok(())
        }

        #[async_trait::async_trait]
        impl $crate::RefreshTokenStore for $store {
            async fn create_refresh_family(
                &self,
                f: &RefreshFamilyRecord,
                first: &RefreshTokenRecord,
            ) -> Result<()> {
                let mut writer = self.group.writer().await?;
                let mut tx = writer.begin().await?;
                sqlx::query(
                    "INSERT INTO refresh_families (id, tenant_id, client_id, user_id, sid, \
                     scope, auth_time, acr, amr, created_at, idle_expires_at, \
                     absolute_expires_at, revoked_at, revoked_reason, dpop_jkt, cert_x5t) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(f.id.as_str())
                .bind(f.tenant.as_str())
                .bind(f.client_id.as_str())
                .bind(f.user_id.as_str())
                .bind(f.sid.as_ref().map(SessionId::as_str))
                .bind(f.scope.join(" "))
                .bind(f.auth_time.as_millis())
                .bind(&f.acr)
                .bind(f.amr.join(" "))
                .bind(f.created_at.as_millis())
                .bind(f.idle_expires_at.as_millis())
                .bind(f.absolute_expires_at.as_millis())
                .bind(f.revoked_at.map(Timestamp::as_millis))
                .bind(&f.revoked_reason)
                .bind(&f.dpop_jkt)
                .bind(&f.cert_x5t)
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                insert_refresh_token_in(&mut tx, first).await?;
                tx.commit().await?;
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn get_refresh_token(&self, digest: &[u8]) -> Result<Option<RefreshTokenRead>> {
                // The user's status rides along (its primary key, no second round trip): a
                // refresh is refused for a user who is not active.
                request_row(
                    &self.readers,
                    "SELECT f.*, t.digest AS token_digest, t.generation, \
                     t.created_at AS token_created_at, t.rotated_at, t.successor_digest, \
                     u.status AS user_status \
                     FROM refresh_tokens t JOIN refresh_families f ON f.id = t.family_id \
                     LEFT JOIN users u ON u.id = f.user_id AND u.tenant_id = f.tenant_id \
                     WHERE t.digest = $1",
                    &[Bind::Blob(digest)],
                    refresh_token_read,
                )
                .await
            }

            async fn get_refresh_family(&self, id: &str) -> Result<Option<RefreshFamilyRecord>> {
                sqlx::query("SELECT * FROM refresh_families WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(|row| family_from_row(row))
                    .transpose()
            }

            async fn rotate_refresh_token(
                &self,
                presented: &[u8],
                successor: &RefreshTokenRecord,
                idle_expires_at: Option<Timestamp>,
            ) -> Result<RotateOutcome> {
                // Each backend rotates in its own dialect: SQLite in one multi-statement query
                // (sqlite.rs), PostgreSQL step by step under the family row's lock
                // (postgres.rs). The conformance suite holds both to the same outcomes.
                self.rotate_refresh_token_in_dialect(presented, successor, idle_expires_at)
                    .await
            }

            async fn revoke_refresh_family(
                &self,
                tenant: &TenantId,
                id: &str,
                reason: &str,
                now: Timestamp,
                token_lifetime: std::time::Duration,
            ) -> Result<Option<RevocationEntry>> {
                let mut tx = self.pool.begin().await?;
                let entry =
                    revoke_families(&mut tx, tenant, Families::Id(id), reason, now, token_lifetime)
                        .await?;
                let Some(entry) = entry else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                tx.commit().await?;
                self.feed.publish(entry.seq);
                Ok(Some(entry))
            }

            async fn list_user_refresh_families(
                &self,
                tenant: &TenantId,
                user_id: &str,
            ) -> Result<Vec<RefreshFamilyRecord>> {
                sqlx::query(
                    "SELECT * FROM refresh_families WHERE tenant_id = $1 AND user_id = $2 \
                     ORDER BY created_at, id",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(|row| family_from_row(row))
                .collect()
            }
        }

        #[async_trait::async_trait]
        impl $crate::ConsentStore for $store {
            async fn put_consent(&self, c: &ConsentRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO consents (tenant_id, user_id, client_id, scopes, granted_at) \
                     VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (tenant_id, user_id, client_id) DO UPDATE SET \
                     scopes = excluded.scopes, granted_at = excluded.granted_at",
                )
                .bind(c.tenant.as_str())
                .bind(c.user_id.as_str())
                .bind(c.client_id.as_str())
                .bind(c.scopes.join(" "))
                .bind(c.granted_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_consent(
                &self,
                tenant: &TenantId,
                user_id: &str,
                client_id: &str,
            ) -> Result<Option<ConsentRecord>> {
                sqlx::query(
                    "SELECT * FROM consents WHERE tenant_id = $1 AND user_id = $2 \
                     AND client_id = $3",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .bind(client_id)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(consent_from_row)
                .transpose()
            }

            async fn list_user_consents(
                &self,
                tenant: &TenantId,
                user_id: &str,
            ) -> Result<Vec<ConsentRecord>> {
                sqlx::query(
                    "SELECT * FROM consents WHERE tenant_id = $1 AND user_id = $2 \
                     ORDER BY client_id",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(consent_from_row)
                .collect()
            }

            async fn revoke_consent(
                &self,
                tenant: &TenantId,
                user_id: &str,
                client_id: &str,
                now: Timestamp,
                token_lifetime: std::time::Duration,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let gone = sqlx::query(
                    "DELETE FROM consents WHERE tenant_id = $1 AND user_id = $2 \
                     AND client_id = $3",
                )
                .bind(tenant.as_str())
                .bind(user_id)
                .bind(client_id)
                .execute(&mut *tx)
                .await?;
                if gone.rows_affected() == 0 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                let last =
                    revoke_families(&mut tx, tenant, Families::UserClient(user_id, client_id), "consent_revoked", now, token_lifetime)
                        .await?;
                tx.commit().await?;
                if let Some(last) = last {
                    self.feed.publish(last.seq);
                }
                Ok(true)
            }
        }
    };
}

pub(crate) use impl_sign_in_store;
