//! The SQL of [`crate::ResourceServerStore`] and [`crate::ClientStore`]: resource servers, OAuth
//! clients, their secrets (digests only) and used client-assertion `jti`s. Expanded for each
//! backend beside `impl_sql_store!`, whose helpers and imports it shares. This module must never
//! see a plaintext secret.

macro_rules! impl_client_store {
    ($store:ty, $row:ty) => {
/// Where one kind of secret owner keeps its rows (fixed names, never request input).
        struct SecretOwner {
            /// The owner's table, with `id`, `tenant_id` and `updated_at` columns.
            table: &'static str,
            /// The owner's kind in `archived_objects`.
            archived_kind: &'static str,
            /// The secrets' table and its column naming the owner.
            secrets: &'static str,
            owner_column: &'static str,
        }

        const CLIENT_SECRETS: SecretOwner = SecretOwner {
            table: "oauth_clients",
            archived_kind: "client",
            secrets: "oauth_client_secrets",
            owner_column: "client_id",
        };

        const RESOURCE_SERVER_SECRETS: SecretOwner = SecretOwner {
            table: "resource_servers",
            archived_kind: "resource_server",
            secrets: "resource_server_secrets",
            owner_column: "resource_server_id",
        };

        /// The first half of a secret rotation, inside `tx`: touches the tenant's live owner row
        /// (which serialises concurrent rotations of one owner) and makes every older secret
        /// still valid at `old_expires_at` expire then. `at` is (the new secret's creation,
        /// `old_expires_at`). Returns `false`, changing nothing, if the tenant has no such live
        /// owner.
        async fn retire_older_secrets(
            tx: &mut sqlx::Transaction<'_, Db>,
            owner: &SecretOwner,
            tenant: &TenantId,
            owner_id: &str,
            (created_at, old_expires_at): (Timestamp, Timestamp),
        ) -> Result<bool> {
            let touch = format!(
                "UPDATE {table} SET updated_at = $1 WHERE id = $2 AND tenant_id = $3 \
                 AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                 WHERE a.kind = '{kind}' AND a.id = {table}.id)",
                table = owner.table,
                kind = owner.archived_kind,
            );
            let found = sqlx::query(&touch)
                .bind(created_at.as_millis())
                .bind(owner_id)
                .bind(tenant.as_str())
                .execute(&mut **tx)
                .await?;
            if found.rows_affected() != 1 {
                return Ok(false);
            }
            let expire = format!(
                "UPDATE {secrets} SET expires_at = $1 WHERE {owner_column} = $2 \
                 AND (expires_at IS NULL OR expires_at > $1)",
                secrets = owner.secrets,
                owner_column = owner.owner_column,
            );
            sqlx::query(&expire)
                .bind(old_expires_at.as_millis())
                .bind(owner_id)
                .execute(&mut **tx)
                .await?;
            Ok(true)
        }

                fn list_col(s: String) -> Vec<String> {
            s.split(' ').filter(|p| !p.is_empty()).map(str::to_owned).collect()
        }

        fn resource_server_from_row(row: &$row) -> Result<ResourceServer> {
            Ok(ResourceServer {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                name: row.try_get("name")?,
                audience: row.try_get("audience")?,
                scopes: list_col(row.try_get("scopes")?),
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
            })
        }

        fn client_from_row(row: &$row) -> Result<OAuthClient> {
            let status: String = row.try_get("status")?;
            let introspect: i64 = row.try_get("can_introspect")?;
            let client_type: String = row.try_get("client_type")?;
            let application_type: String = row.try_get("application_type")?;
            let first_party: i64 = row.try_get("first_party")?;
            let bcl_sid: i64 = row.try_get("backchannel_logout_session_required")?;
            let require_par: i64 = row.try_get("require_pushed_requests")?;
            let require_dpop: i64 = row.try_get("require_dpop")?;
            let id_alg: Option<String> = row.try_get("id_token_signed_response_alg")?;
            let tls_kind: Option<String> = row.try_get("tls_subject_kind")?;
            let tls_value: Option<String> = row.try_get("tls_subject_value")?;
            let cert_bound: i64 = row.try_get("certificate_bound_tokens")?;
            Ok(OAuthClient {
                id: row.try_get("id")?,
                tenant: tenant_id(row.try_get("tenant_id")?)?,
                name: row.try_get("name")?,
                environment: row.try_get("environment")?,
                auth_method: row.try_get("auth_method")?,
                grant_types: list_col(row.try_get("grant_types")?),
                scopes: list_col(row.try_get("scopes")?),
                audiences: list_col(row.try_get("audiences")?),
                access_token_ttl_secs: row.try_get("access_token_ttl_secs")?,
                can_introspect: introspect != 0,
                jwks: row.try_get("jwks")?,
                jwks_uri: row.try_get("jwks_uri")?,
                status: ClientStatus::parse(&status).ok_or_else(|| corrupt("client status", &status))?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
                client_type: ClientType::parse(&client_type)
                    .ok_or_else(|| corrupt("client type", &client_type))?,
                application_type: ApplicationType::parse(&application_type)
                    .ok_or_else(|| corrupt("application type", &application_type))?,
                redirect_uris: list_col(row.try_get("redirect_uris")?),
                post_logout_redirect_uris: list_col(row.try_get("post_logout_redirect_uris")?),
                allowed_web_origins: list_col(row.try_get("allowed_web_origins")?),
                first_party: first_party != 0,
                backchannel_logout_uri: row.try_get("backchannel_logout_uri")?,
                backchannel_logout_session_required: bcl_sid != 0,
                require_pushed_requests: require_par != 0,
                require_dpop: require_dpop != 0,
                id_token_signed_response_alg: id_alg
                    .map(|a| {
                        SigningAlgorithm::parse(&a)
                            .ok_or_else(|| corrupt("ID-token algorithm", &a))
                    })
                    .transpose()?,
                tls_subject: match (tls_kind, tls_value) {
                    (Some(kind), Some(value)) => Some($crate::TlsSubjectRecord { kind, value }),
                    _ => None,
                },
                certificate_bound_tokens: cert_bound != 0,
            })
        }

        fn client_secret_from_row(row: &$row) -> Result<ClientSecretRecord> {
            Ok(ClientSecretRecord {
                id: row.try_get("id")?,
                client_id: row.try_get("client_id")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: ts(row.try_get("expires_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        fn resource_server_secret_from_row(row: &$row) -> Result<ResourceServerSecretRecord> {
            Ok(ResourceServerSecretRecord {
                id: row.try_get("id")?,
                resource_server_id: row.try_get("resource_server_id")?,
                display_prefix: row.try_get("display_prefix")?,
                secret_digest: row.try_get("secret_digest")?,
                created_at: Timestamp::from_millis(row.try_get("created_at")?),
                expires_at: ts(row.try_get("expires_at")?),
                last_used_at: ts(row.try_get("last_used_at")?),
            })
        }

        #[async_trait::async_trait]
        impl $crate::ResourceServerStore for $store {
            async fn create_resource_server(&self, rs: &ResourceServer) -> Result<()> {
                sqlx::query(
                    "INSERT INTO resource_servers (id, tenant_id, name, audience, scopes, \
                     created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&rs.id)
                .bind(rs.tenant.as_str())
                .bind(&rs.name)
                .bind(&rs.audience)
                .bind(rs.scopes.join(" "))
                .bind(rs.created_at.as_millis())
                .bind(rs.updated_at.as_millis())
                .execute(&self.pool)
                .await
                .map_err(StoreError::from_write)?;
                Ok(())
            }

            async fn get_resource_server(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<ResourceServer>> {
                sqlx::query("SELECT * FROM resource_servers WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant.as_str())
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(resource_server_from_row)
                    .transpose()
            }

            async fn find_resource_server_by_audience(
                &self,
                tenant: &TenantId,
                audience: &str,
            ) -> Result<Option<ResourceServer>> {
                sqlx::query(
                    "SELECT * FROM resource_servers WHERE tenant_id = $1 AND audience = $2 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'resource_server' AND a.id = resource_servers.id)",
                )
                .bind(tenant.as_str())
                .bind(audience)
                .fetch_optional(&self.pool)
                .await?
                .as_ref()
                .map(resource_server_from_row)
                .transpose()
            }

            async fn list_resource_servers(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
                archived: ArchivedFilter,
            ) -> Result<Page<Archivable<ResourceServer>>> {
                let mut q =
                    archivable_select("resource_servers", ArchivedKind::ResourceServer, archived);
                q.push(" AND t.tenant_id = ").push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "t.created_at", "t.id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| archivable(r, resource_server_from_row(r)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |rs| {
                    created_key(rs.item.created_at, &rs.item.id)
                }))
            }

            async fn find_resource_server(&self, id: &str) -> Result<Option<ResourceServer>> {
                sqlx::query(
                    "SELECT * FROM resource_servers WHERE id = $1 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'resource_server' AND a.id = resource_servers.id)",
                )
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(resource_server_from_row)
                    .transpose()
            }

            async fn rotate_resource_server_secret(
                &self,
                tenant: &TenantId,
                s: &ResourceServerSecretRecord,
                old_expires_at: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let at = (s.created_at, old_expires_at);
                if !retire_older_secrets(&mut tx, &RESOURCE_SERVER_SECRETS, tenant, &s.resource_server_id, at).await? {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO resource_server_secrets (id, resource_server_id, display_prefix, \
                     secret_digest, created_at, expires_at, last_used_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(&s.id)
                .bind(&s.resource_server_id)
                .bind(&s.display_prefix)
                .bind(&s.secret_digest)
                .bind(s.created_at.as_millis())
                .bind(s.expires_at.map(Timestamp::as_millis))
                .bind(s.last_used_at.map(Timestamp::as_millis))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                tx.commit().await?;
                Ok(true)
            }

            async fn list_resource_server_secrets(
                &self,
                resource_server_id: &str,
            ) -> Result<Vec<ResourceServerSecretRecord>> {
                sqlx::query(
                    "SELECT * FROM resource_server_secrets WHERE resource_server_id = $1 \
                     ORDER BY created_at DESC, id",
                )
                .bind(resource_server_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(resource_server_secret_from_row)
                .collect()
            }

            async fn touch_resource_server_secret(&self, secret_id: &str, now: Timestamp) -> Result<()> {
                sqlx::query(
                    "UPDATE resource_server_secrets SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(secret_id)
                .execute(&self.pool)
                .await?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl $crate::ClientStore for $store {
            async fn create_client(
                &self,
                c: &OAuthClient,
                secret: Option<&ClientSecretRecord>,
            ) -> Result<()> {
                let mut tx = self.pool.begin().await?;
                sqlx::query(
                    "INSERT INTO oauth_clients (id, tenant_id, name, environment, auth_method, \
                     grant_types, scopes, audiences, access_token_ttl_secs, can_introspect, \
                     jwks, jwks_uri, status, created_at, updated_at, last_used_at, \
                     client_type, application_type, redirect_uris, post_logout_redirect_uris, \
                     allowed_web_origins, first_party, backchannel_logout_uri, \
                     backchannel_logout_session_required, require_pushed_requests, \
                     id_token_signed_response_alg, require_dpop, tls_subject_kind, \
                     tls_subject_value, certificate_bound_tokens) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
                     $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30)",
                )
                .bind(&c.id)
                .bind(c.tenant.as_str())
                .bind(&c.name)
                .bind(&c.environment)
                .bind(&c.auth_method)
                .bind(c.grant_types.join(" "))
                .bind(c.scopes.join(" "))
                .bind(c.audiences.join(" "))
                .bind(c.access_token_ttl_secs)
                .bind(i64::from(c.can_introspect))
                .bind(&c.jwks)
                .bind(&c.jwks_uri)
                .bind(c.status.as_str())
                .bind(c.created_at.as_millis())
                .bind(c.updated_at.as_millis())
                .bind(c.last_used_at.map(Timestamp::as_millis))
                .bind(c.client_type.as_str())
                .bind(c.application_type.as_str())
                .bind(c.redirect_uris.join(" "))
                .bind(c.post_logout_redirect_uris.join(" "))
                .bind(c.allowed_web_origins.join(" "))
                .bind(i64::from(c.first_party))
                .bind(&c.backchannel_logout_uri)
                .bind(i64::from(c.backchannel_logout_session_required))
                .bind(i64::from(c.require_pushed_requests))
                .bind(c.id_token_signed_response_alg.map(SigningAlgorithm::as_str))
                .bind(i64::from(c.require_dpop))
                .bind(c.tls_subject.as_ref().map(|t| t.kind.as_str()))
                .bind(c.tls_subject.as_ref().map(|t| t.value.as_str()))
                .bind(i64::from(c.certificate_bound_tokens))
                .execute(&mut *tx)
                .await
                .map_err(StoreError::from_write)?;
                if let Some(s) = secret {
                    insert_client_secret(&mut tx, s).await?;
                }
                tx.commit().await?;
                Ok(())
            }

            async fn get_client(&self, id: &str) -> Result<Option<OAuthClient>> {
                sqlx::query("SELECT * FROM oauth_clients WHERE id = $1")
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(client_from_row)
                    .transpose()
            }

            async fn get_tenant_client(
                &self,
                tenant: &TenantId,
                id: &str,
            ) -> Result<Option<OAuthClient>> {
                sqlx::query("SELECT * FROM oauth_clients WHERE id = $1 AND tenant_id = $2")
                    .bind(id)
                    .bind(tenant.as_str())
                    .fetch_optional(&self.pool)
                    .await?
                    .as_ref()
                    .map(client_from_row)
                    .transpose()
            }

            async fn list_clients(
                &self,
                tenant: &TenantId,
                page: &PageRequest,
                archived: ArchivedFilter,
            ) -> Result<Page<Archivable<OAuthClient>>> {
                let mut q = archivable_select("oauth_clients", ArchivedKind::Client, archived);
                q.push(" AND t.tenant_id = ").push_bind(tenant.as_str().to_owned());
                push_keyset(&mut q, page, "t.created_at", "t.id", false);
                let rows = q
                    .build()
                    .fetch_all(&self.pool)
                    .await?
                    .iter()
                    .map(|r| archivable(r, client_from_row(r)?))
                    .collect::<Result<Vec<_>>>()?;
                Ok(Page::from_rows(rows, page, |c| {
                    created_key(c.item.created_at, &c.item.id)
                }))
            }

            async fn update_client(&self, c: &OAuthClient, now: Timestamp) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_clients SET name = $1, grant_types = $2, scopes = $3, \
                     audiences = $4, access_token_ttl_secs = $5, can_introspect = $6, \
                     redirect_uris = $7, post_logout_redirect_uris = $8, \
                     allowed_web_origins = $9, first_party = $10, updated_at = $11, \
                     backchannel_logout_uri = $14, backchannel_logout_session_required = $15, \
                     require_pushed_requests = $16, id_token_signed_response_alg = $17, \
                     require_dpop = $18, tls_subject_kind = $19, tls_subject_value = $20, \
                     certificate_bound_tokens = $21 \
                     WHERE tenant_id = $12 AND id = $13 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'client' AND a.id = oauth_clients.id)",
                )
                .bind(&c.name)
                .bind(c.grant_types.join(" "))
                .bind(c.scopes.join(" "))
                .bind(c.audiences.join(" "))
                .bind(c.access_token_ttl_secs)
                .bind(i64::from(c.can_introspect))
                .bind(c.redirect_uris.join(" "))
                .bind(c.post_logout_redirect_uris.join(" "))
                .bind(c.allowed_web_origins.join(" "))
                .bind(i64::from(c.first_party))
                .bind(now.as_millis())
                .bind(c.tenant.as_str())
                .bind(&c.id)
                .bind(&c.backchannel_logout_uri)
                .bind(i64::from(c.backchannel_logout_session_required))
                .bind(i64::from(c.require_pushed_requests))
                .bind(c.id_token_signed_response_alg.map(SigningAlgorithm::as_str))
                .bind(i64::from(c.require_dpop))
                .bind(c.tls_subject.as_ref().map(|t| t.kind.as_str()))
                .bind(c.tls_subject.as_ref().map(|t| t.value.as_str()))
                .bind(i64::from(c.certificate_bound_tokens))
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn set_client_status(
                &self,
                tenant: &TenantId,
                id: &str,
                status: ClientStatus,
                now: Timestamp,
            ) -> Result<bool> {
                let done = sqlx::query(
                    "UPDATE oauth_clients SET status = $1, updated_at = $2 \
                     WHERE tenant_id = $3 AND id = $4 \
                     AND NOT EXISTS (SELECT 1 FROM archived_objects a \
                                     WHERE a.kind = 'client' AND a.id = oauth_clients.id)",
                )
                .bind(status.as_str())
                .bind(now.as_millis())
                .bind(tenant.as_str())
                .bind(id)
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected() == 1)
            }

            async fn list_client_secrets(&self, client_id: &str) -> Result<Vec<ClientSecretRecord>> {
                sqlx::query(
                    "SELECT * FROM oauth_client_secrets WHERE client_id = $1 \
                     ORDER BY created_at DESC, id",
                )
                .bind(client_id)
                .fetch_all(&self.pool)
                .await?
                .iter()
                .map(client_secret_from_row)
                .collect()
            }

            async fn rotate_client_secret(
                &self,
                tenant: &TenantId,
                s: &ClientSecretRecord,
                old_expires_at: Timestamp,
            ) -> Result<bool> {
                let mut tx = self.pool.begin().await?;
                let at = (s.created_at, old_expires_at);
                if !retire_older_secrets(&mut tx, &CLIENT_SECRETS, tenant, &s.client_id, at).await? {
                    return Ok(false);
                }
                insert_client_secret(&mut tx, s).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn touch_client(
                &self,
                client_id: &str,
                secret_id: Option<&str>,
                now: Timestamp,
            ) -> Result<()> {
                let mut writer = self.group.writer().await?;
                sqlx::query(
                    "UPDATE oauth_clients SET last_used_at = $1 \
                     WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                )
                .bind(now.as_millis())
                .bind(client_id)
                .execute(&mut *writer)
                .await?;
                if let Some(secret_id) = secret_id {
                    sqlx::query(
                        "UPDATE oauth_client_secrets SET last_used_at = $1 \
                         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)",
                    )
                    .bind(now.as_millis())
                    .bind(secret_id)
                    .execute(&mut *writer)
                    .await?;
                }
                self.group.durable(writer).await?;
                Ok(())
            }

            async fn record_assertion_jti(
                &self,
                client_id: &str,
                jti: &str,
                expires_at: Timestamp,
                now: Timestamp,
            ) -> Result<bool> {
                record_once(&self.group, "client_assertion_jtis", "client_id", client_id, jti, expires_at, now).await
            }

            async fn prune_assertion_jtis(&self, now: Timestamp) -> Result<u64> {
                prune_expired_once(&self.pool, "client_assertion_jtis", now).await
            }
        }

        async fn insert_client_secret(
            tx: &mut sqlx::Transaction<'_, <$row as sqlx::Row>::Database>,
            s: &ClientSecretRecord,
        ) -> Result<()> {
            sqlx::query(
                "INSERT INTO oauth_client_secrets (id, client_id, display_prefix, secret_digest, \
                 created_at, expires_at, last_used_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .bind(&s.id)
            .bind(&s.client_id)
            .bind(&s.display_prefix)
            .bind(&s.secret_digest)
            .bind(s.created_at.as_millis())
            .bind(s.expires_at.map(Timestamp::as_millis))
            .bind(s.last_used_at.map(Timestamp::as_millis))
            .execute(&mut **tx)
            .await
            .map_err(StoreError::from_write)?;
            Ok(())
        }

    };
}

pub(crate) use impl_client_store;
