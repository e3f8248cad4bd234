//! The SQL of [`crate::FederationStore`]: trusted issuers, trust rules and the subject-token
//! replay table, expanded for each backend beside `impl_sql_store!` (whose helpers `corrupt`,
//! `tenant_id` and `list_col` it uses).
//!
//! Single use of a subject token is the database's job: the `(issuer, jti)` primary key and
//! `INSERT ... ON CONFLICT DO NOTHING`, so two nodes racing on one token cannot both win. An
//! issuer is removed only when it has no rule, checked in the deleting transaction (the foreign
//! key is the backstop). This module must never decide whether a rule admits a token.

macro_rules! impl_federation_store {
    ($store:ty, $row:ty) => {
        use $crate::federation_model::*;

        fn trusted_issuer_from_row(row: &$row) -> Result<TrustedIssuerRecord> {
            let kind: String = row.try_get("key_source")?;
            let value: Option<String> = row.try_get("key_source_value")?;
            Ok(TrustedIssuerRecord {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                issuer: row.try_get("issuer")?,
                preset: row.try_get("preset")?,
                key_source: KeySourceRecord::from_parts(&kind, value)
                    .ok_or_else(|| corrupt("key source", &kind))?,
                algorithms: list_col(row.try_get("algorithms")?),
                max_token_age_s: row.try_get("max_token_age_s")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        fn trust_rule_from_row(row: &$row) -> Result<TrustRuleRecord> {
            let bound: i64 = row.try_get("bound_to_subject_lifetime")?;
            Ok(TrustRuleRecord {
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                id: row.try_get("id")?,
                issuer: row.try_get("issuer")?,
                audience: row.try_get("audience")?,
                conditions: row.try_get("conditions")?,
                audiences: list_col(row.try_get("audiences")?),
                scopes: list_col(row.try_get("scopes")?),
                max_lifetime_s: row.try_get("max_lifetime_s")?,
                max_token_age_s: row.try_get("max_token_age_s")?,
                bound_to_subject_lifetime: bound == 1,
                client_id: row.try_get("client_id")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        /// The one `INSERT INTO trusted_issuers`, for creation and import alike.
        fn trusted_issuer_insert(
            rows: &[TrustedIssuerRecord],
        ) -> sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO trusted_issuers (tenant_id, issuer, preset, key_source, \
                 key_source_value, algorithms, max_token_age_s, created_at, updated_at) ",
            );
            q.push_values(rows, |mut b, i| {
                b.push_bind(i.tenant.as_str())
                    .push_bind(&i.issuer)
                    .push_bind(&i.preset)
                    .push_bind(i.key_source.kind())
                    .push_bind(i.key_source.value())
                    .push_bind(i.algorithms.join(" "))
                    .push_bind(i.max_token_age_s)
                    .push_bind(i.created_at.as_millis())
                    .push_bind(i.updated_at.as_millis());
            });
            q
        }

        /// The one `INSERT INTO trust_rules`, for creation and import alike.
        fn trust_rule_insert(
            rows: &[TrustRuleRecord],
        ) -> sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(
                "INSERT INTO trust_rules (tenant_id, id, issuer, audience, conditions, audiences, \
                 scopes, max_lifetime_s, max_token_age_s, bound_to_subject_lifetime, client_id, \
                 created_at, updated_at) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(r.tenant.as_str())
                    .push_bind(&r.id)
                    .push_bind(&r.issuer)
                    .push_bind(&r.audience)
                    .push_bind(&r.conditions)
                    .push_bind(r.audiences.join(" "))
                    .push_bind(r.scopes.join(" "))
                    .push_bind(r.max_lifetime_s)
                    .push_bind(r.max_token_age_s)
                    .push_bind(i64::from(r.bound_to_subject_lifetime))
                    .push_bind(&r.client_id)
                    .push_bind(r.created_at.as_millis())
                    .push_bind(r.updated_at.as_millis());
            });
            q
        }

        #[async_trait::async_trait]
        impl $crate::FederationStore for $store {
            async fn create_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> Result<()> {
                trusted_issuer_insert(std::slice::from_ref(issuer))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn update_trusted_issuer(&self, issuer: &TrustedIssuerRecord) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE trusted_issuers SET preset = $1, key_source = $2, \
                     key_source_value = $3, algorithms = $4, max_token_age_s = $5, \
                     updated_at = $6 WHERE tenant_id = $7 AND issuer = $8",
                )
                .bind(&issuer.preset)
                .bind(issuer.key_source.kind())
                .bind(issuer.key_source.value())
                .bind(issuer.algorithms.join(" "))
                .bind(issuer.max_token_age_s)
                .bind(issuer.updated_at.as_millis())
                .bind(issuer.tenant.as_str())
                .bind(&issuer.issuer)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_trusted_issuer(
                &self,
                tenant: &TenantId,
                issuer: &str,
            ) -> Result<Option<TrustedIssuerRecord>> {
                sqlx::query("SELECT * FROM trusted_issuers WHERE tenant_id = $1 AND issuer = $2")
                    .bind(tenant.as_str())
                    .bind(issuer)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(trusted_issuer_from_row)
                    .transpose()
            }

            async fn list_trusted_issuers(
                &self,
                tenant: &TenantId,
            ) -> Result<Vec<TrustedIssuerRecord>> {
                sqlx::query("SELECT * FROM trusted_issuers WHERE tenant_id = $1 ORDER BY issuer")
                    .bind(tenant.as_str())
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(trusted_issuer_from_row)
                    .collect()
            }

            async fn delete_trusted_issuer(&self, tenant: &TenantId, issuer: &str) -> Result<bool> {
                // One statement, so SQLite takes its write lock at once and waits for another
                // writer (busy timeout) instead of failing a read-then-write upgrade; an issuer
                // with rules is left alone (and the foreign key would refuse it anyway).
                let done = sqlx::query(
                    "DELETE FROM trusted_issuers WHERE tenant_id = $1 AND issuer = $2 \
                     AND NOT EXISTS (SELECT 1 FROM trust_rules r \
                                     WHERE r.tenant_id = $1 AND r.issuer = $2)",
                )
                .bind(tenant.as_str())
                .bind(issuer)
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                if done.rows_affected() == 1 {
                    return Ok(true);
                }
                let rules: Option<i64> = sqlx::query_scalar(
                    "SELECT CAST(1 AS BIGINT) FROM trust_rules \
                     WHERE tenant_id = $1 AND issuer = $2 LIMIT 1",
                )
                .bind(tenant.as_str())
                .bind(issuer)
                .fetch_optional(&self.pool)
                .await?;
                if rules.is_some() {
                    return Err(StoreError::Conflict);
                }
                Ok(false)
            }

            async fn create_trust_rule(&self, rule: &TrustRuleRecord) -> Result<()> {
                trust_rule_insert(std::slice::from_ref(rule))
                    .build()
                    .execute(&self.pool)
                    .await
                    .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn update_trust_rule(
                &self,
                rule: &TrustRuleRecord,
                read_updated_at: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE trust_rules SET audience = $1, conditions = $2, audiences = $3, \
                     scopes = $4, max_lifetime_s = $5, max_token_age_s = $6, \
                     bound_to_subject_lifetime = $7, updated_at = $8, client_id = $9 \
                     WHERE tenant_id = $10 AND id = $11 AND issuer = $12 \
                     AND created_at = $13 AND updated_at = $14",
                )
                .bind(&rule.audience)
                .bind(&rule.conditions)
                .bind(rule.audiences.join(" "))
                .bind(rule.scopes.join(" "))
                .bind(rule.max_lifetime_s)
                .bind(rule.max_token_age_s)
                .bind(i64::from(rule.bound_to_subject_lifetime))
                .bind(rule.updated_at.as_millis())
                .bind(&rule.client_id)
                .bind(rule.tenant.as_str())
                .bind(&rule.id)
                .bind(&rule.issuer)
                .bind(rule.created_at.as_millis())
                .bind(read_updated_at.as_millis())
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn get_trust_rule(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<TrustRuleRecord>> {
                sqlx::query("SELECT * FROM trust_rules WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(trust_rule_from_row)
                    .transpose()
            }

            async fn list_trust_rules(
                &self,
                tenant: &TenantId,
                issuer: Option<&str>,
            ) -> Result<Vec<TrustRuleRecord>> {
                let rows = match issuer {
                    Some(i) => {
                        sqlx::query(
                            "SELECT * FROM trust_rules WHERE tenant_id = $1 AND issuer = $2 \
                             ORDER BY id",
                        )
                        .bind(tenant.as_str())
                        .bind(i)
                        .fetch_all(&self.pool)
                        .await?
                    }
                    None => {
                        sqlx::query("SELECT * FROM trust_rules WHERE tenant_id = $1 ORDER BY id")
                            .bind(tenant.as_str())
                            .fetch_all(&self.pool)
                            .await?
                    }
                };
                rows.iter().map(trust_rule_from_row).collect()
            }

            async fn delete_trust_rule(&self, tenant: &TenantId, id: &str) -> Result<bool> {
                let done = sqlx::query("DELETE FROM trust_rules WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id)
                    .execute(&self.pool)
                    .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn record_subject_jti(
                &self,
                issuer: &str,
                jti: &str,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool> {
                record_once(&self.group, "subject_token_jtis", "issuer", issuer, jti, expires_at, now).await
            }

            async fn prune_subject_jtis(&self, now: Timestamp) -> Result<u64> {
                prune_expired_once(&self.pool, "subject_token_jtis", now).await
            }
        }
    };
}

pub(crate) use impl_federation_store;
