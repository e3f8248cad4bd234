//! The SQL of [`crate::SigningKeyStore`] and [`crate::AdminCredentialStore`]: signing keys (sealed
//! private keys only) and admin credentials (digests only). Expanded for each backend beside
//! `impl_sql_store!`, whose helpers and imports it shares. This module must never see a
//! plaintext private key or admin token.

macro_rules! impl_key_store {
    ($store:ty, $row:ty) => {
        fn signing_key_from_row(row: &$row) -> Result<StoredSigningKey> {
            let alg: String = row.try_get("algorithm")?;
            let state: String = row.try_get("state")?;
            Ok(StoredSigningKey {
                kid: row.try_get("kid")?,
                algorithm: SigningAlgorithm::parse(&alg).ok_or_else(|| corrupt("algorithm", &alg))?,
                state: KeyState::parse(&state).ok_or_else(|| corrupt("key state", &state))?,
                public_jwk: row.try_get("public_jwk")?,
                kek_id: row.try_get("kek_id")?,
                sealed_private_key: row.try_get("sealed_private_key")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                activates_at: Timestamp::from_millis(row.try_get("activates_at")?),
                retired_at: ts(row.try_get("retired_at")?),
                publish_until: ts(row.try_get("publish_until")?),
            })
        }

        fn admin_credential_from_row(row: &$row) -> Result<AdminCredentialRecord> {
            let role: String = row.try_get("role")?;
            Ok(AdminCredentialRecord {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                role: AdminRole::parse(&role).ok_or_else(|| corrupt("admin role", &role))?,
                name: row.try_get("name")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                created_by: row.try_get("created_by")?,
                revoked_at: ts(row.try_get("revoked_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::SigningKeyStore for $store {
            async fn page_signing_keys(&self, page: &PageRequest) -> Result<Page<StoredSigningKey>> {
                let mut q = sqlx::QueryBuilder::new("SELECT * FROM signing_keys WHERE 1 = 1");
                push_keyset(&mut q, page, "created_at", "kid", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(signing_key_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |k| created_key(k.created_at, &k.kid)))
            }

            async fn list_signing_keys(&self) -> Result<Vec<StoredSigningKey>> {
                sqlx::query("SELECT * FROM signing_keys ORDER BY created_at, kid")
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(signing_key_from_row)
                    .collect()
            }

            async fn insert_signing_key(&self, k: &StoredSigningKey) -> Result<bool> {
                let result = sqlx::query(
                    "INSERT INTO signing_keys (kid, algorithm, state, public_jwk, kek_id, \
                     sealed_private_key, created_at, activates_at, retired_at, publish_until) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&k.kid)
                .bind(k.algorithm.as_str())
                .bind(k.state.as_str())
                .bind(&k.public_jwk)
                .bind(&k.kek_id)
                .bind(&k.sealed_private_key)
                .bind(k.created_at.as_millis())
                .bind(k.activates_at.as_millis())
                .bind(k.retired_at.map(Timestamp::as_millis))
                .bind(k.publish_until.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await;
                match result.map_err(StoreError::from_write) {
                    Ok(_) => Ok(true),
                    // Either the kid collided (practically impossible with random ids) or
                    // another node inserted the one active key first: nothing changed.
                    Err(StoreError::Conflict) => Ok(false),
                    Err(e) => Err(e),
                }
            }

            async fn reseal_signing_key(
                &self,
                kid: &str,
                expected_kek_id: &str,
                new_kek_id: &str,
                sealed: &[u8],
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE signing_keys SET kek_id = $1, sealed_private_key = $2 \
                     WHERE kid = $3 AND kek_id = $4",
                )
                .bind(new_kek_id)
                .bind(sealed)
                .bind(kid)
                .bind(expected_kek_id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn activate_signing_key(
                &self,
                kid: &str,
                now: Timestamp,
                retired_publish_until: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                // Retire first: the unique index allows one active key per lane (RS256 and
                // the rest, `portcullis_core::signing::KeyLane`) at any instant. Only the
                // pending key's lane changes: the other lane's key keeps signing.
                sqlx::query(
                    "UPDATE signing_keys SET state = 'retired', retired_at = $1, \
                     publish_until = $2 WHERE state = 'active' \
                     AND (algorithm = 'RS256') = (SELECT p.algorithm = 'RS256' \
                          FROM signing_keys p WHERE p.kid = $3 AND p.state = 'pending')",
                )
                .bind(now.as_millis())
                .bind(retired_publish_until.as_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                let done = sqlx::query(
                    "UPDATE signing_keys SET state = 'active', activates_at = $1 \
                     WHERE kid = $2 AND state = 'pending'",
                )
                .bind(now.as_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() != 1 {
                    tx.rollback().await?;
                    return Ok(false);
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn revoke_signing_key(
                &self,
                kid: &str,
                now: Timestamp,
            ) -> Result<Option<KeyState>> {
                let mut tx = self.pool.begin().await?;
                let before: Option<String> = sqlx::query_scalar(
                    "UPDATE signing_keys SET publish_until = $1 \
                     WHERE kid = $2 AND state <> 'revoked' RETURNING state",
                )
                .bind(now.as_millis())
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?;
                let Some(before) = before else {
                    tx.rollback().await?;
                    return Ok(None);
                };
                let before = KeyState::parse(&before).ok_or_else(|| corrupt("key state", &before))?;
                sqlx::query(
                    "UPDATE signing_keys SET state = 'revoked', \
                     retired_at = COALESCE(retired_at, $1) WHERE kid = $2",
                )
                .bind(now.as_millis())
                .bind(kid)
                .execute(&mut *tx)
                .await?;
                tx.commit().await?;
                Ok(Some(before))
            }
        }

        #[async_trait::async_trait]
        impl $crate::AdminCredentialStore for $store {
            async fn insert_admin_credential(&self, c: &AdminCredentialRecord) -> Result<()> {
                sqlx::query(
                    "INSERT INTO admin_credentials (id, tenant_id, role, name, display_prefix, \
                     secret_digest, created_at, created_by, revoked_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                )
                .bind(&c.id)
                .bind(c.tenant.as_str())
                .bind(c.role.as_str())
                .bind(&c.name)
                .bind(&c.display_prefix)
                .bind(&c.secret_digest)
                .bind(c.created_at.as_millis())
                .bind(&c.created_by)
                .bind(c.revoked_at.map(Timestamp::as_millis))
                .bind(c.last_used_at.map(Timestamp::as_millis))
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_admin_credential(&self, id: &str) -> Result<Option<AdminCredentialRecord>> {
                sqlx::query("SELECT * FROM admin_credentials WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(admin_credential_from_row)
                    .transpose()
            }

            async fn list_admin_credentials(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
            ) -> Result<Page<AdminCredentialRecord>> {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT * FROM admin_credentials WHERE tenant_id = ");
                q.push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "created_at", "id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(admin_credential_from_row)
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |c| created_key(c.created_at, &c.id)))
            }

            async fn revoke_admin_credential(
                &self,
                tenant: &TenantId,
                id: &str,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE admin_credentials SET revoked_at = $1 \
                     WHERE id = $2 AND tenant_id = $3 AND revoked_at IS NULL",
                )
                .bind(now.as_millis())
                .bind(id)
                .bind(tenant.as_str())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn count_active_global_admins(&self) -> Result<u64> {
                let n: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM admin_credentials \
                     WHERE role = 'global_admin' AND revoked_at IS NULL",
                )
                .fetch_one(&self.pool)
                .await?;
                Ok(u64::try_from(n).unwrap_or(0))
            }

            async fn touch_admin_credential(&self, id: &str, now: Timestamp) -> Result<()> {
                sqlx::query(
                    "UPDATE admin_credentials SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

    };
}

pub(crate) use impl_key_store;
