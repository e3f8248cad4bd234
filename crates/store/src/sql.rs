//! The one SQL implementation of every storage trait, expanded for each backend: this file holds
//! what every aggregate's SQL shares (imports, row helpers, the keyset-pagination rule, the
//! archive filter) and the `Store` trait itself; each aggregate's queries live in their own
//! `sql_<aggregate>.rs` macro (tenants and the archive, signing keys and admin credentials,
//! audit and alerts, clients and resource servers, the revocation log, API keys, users, sign-in
//! state), expanded beside this one in `sqlite.rs` and `postgres.rs`.
//!
//! Queries use `$N` placeholders and types both SQLite and PostgreSQL decode alike (TEXT, BIGINT,
//! BLOB/BYTEA, nullable columns), so the same text runs on both. A backend only supplies its pool
//! type and its migrations. Adding a query here adds it to both backends at once, and the
//! conformance suite (`tests/it/conformance.rs`) runs it against both.
//!
//! A backend also holds a `feed: Arc<HeadFeed>` that revocation appends publish to after they
//! commit, and names its revocation-head follower to `sql_revocations.rs`.

macro_rules! impl_sql_store {
    ($store:ty, $row:ty, $backend:literal) => {
        use portcullis_core::admin::AdminRole;
        use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome, Reason};
        use portcullis_core::revocation::Candidate;
        use portcullis_core::signing::{KeyState, SigningAlgorithm};
        use portcullis_core::tenant::{TenantId, TenantStatus};
        use portcullis_core::time::Timestamp;
        use sqlx::Row as _;
        use $crate::model::*;
        use $crate::page::*;
        use $crate::request_reads::Columns;
        use $crate::{Result, StoreError};

        fn corrupt(what: &str, value: &str) -> StoreError {
            StoreError::Corrupt(format!("{what}: {value:?}"))
        }

        fn ts(ms: Option<i64>) -> Option<Timestamp> {
            ms.map(Timestamp::from_millis)
        }

        fn tenant_id(s: String) -> Result<TenantId> {
            TenantId::parse(&s).map_err(|_| corrupt("tenant id", &s))
        }

        // Core's typed ids as sign-in state stores them: parsed once here, so a stored id that
        // does not parse is a corrupt row, never a caller's problem.

        fn stored_user_id(s: String) -> Result<portcullis_core::user::UserId> {
            portcullis_core::user::UserId::parse(&s).map_err(|_| corrupt("user id", &s))
        }

        fn stored_client_id(s: String) -> Result<portcullis_core::client::ClientId> {
            portcullis_core::client::ClientId::parse(&s).ok_or_else(|| corrupt("client id", &s))
        }

        fn stored_session_id(s: String) -> Result<portcullis_core::session::SessionId> {
            portcullis_core::session::SessionId::parse(&s).ok_or_else(|| corrupt("session id", &s))
        }

        fn stored_family_id(s: String) -> Result<portcullis_core::refresh::FamilyId> {
            portcullis_core::refresh::FamilyId::parse(&s)
                .ok_or_else(|| corrupt("refresh-token family id", &s))
        }

        /// The one single-use rule for presented ids (client-assertion, DPoP-proof and
        /// subject-token `jti`s): an id is recorded once per scope (`scope_column`: the client,
        /// the proof key, the issuer) until it expires, and may come back only after its own
        /// record expired. Returns whether this call recorded it (`false`: a replay). `table` and
        /// `scope_column` are this crate's constants, never input.
        ///
        /// Written through group commit (`group_commit.rs`): a request-path write.
        ///
        /// One statement, no transaction around it: insert, or take over the id's own record
        /// only if that has expired. The primary key decides between racing callers on every
        /// node (PostgreSQL re-checks the `WHERE` on the row it locked; SQLite has one writer),
        /// so exactly one of them sees a row written. Other expired records are left to the
        /// table's scheduled prune (`prune_*_jtis`), not deleted on the request path.
        async fn record_once(
            group: &$crate::group_commit::GroupCommit<<$row as sqlx::Row>::Database>,
            table: &'static str,
            scope_column: &'static str,
            scope: &str,
            jti: &str,
            expires_at: Timestamp,
            now: Timestamp,
        ) -> Result<bool> {
            let upsert = format!(
                "INSERT INTO {table} ({scope_column}, jti, expires_at) VALUES ($1, $2, $3) \
                 ON CONFLICT ({scope_column}, jti) DO UPDATE SET expires_at = excluded.expires_at \
                 WHERE {table}.expires_at <= $4"
            );
            let mut writer = group.writer().await?;
            let written = sqlx::query(&upsert)
                .bind(scope)
                .bind(jti)
                .bind(expires_at.as_millis())
                .bind(now.as_millis())
                .execute(&mut *writer)
                .await?;
            // A replay wrote nothing, so it waits for no fsync.
            group.durable_if_wrote(writer, written.rows_affected()).await
        }

        /// The scheduled prune of a [`record_once`] table: deletes the records whose replay
        /// window has passed; how many.
        async fn prune_expired_once(
            pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
            table: &'static str,
            now: Timestamp,
        ) -> Result<u64> {
            let done = sqlx::query(&format!("DELETE FROM {table} WHERE expires_at <= $1"))
                .bind(now.as_millis())
                .execute(pool)
                .await?;
            Ok(done.rows_affected())
        }

        /// The one keyset-pagination rule in SQL (see `page.rs`): appends to a query whose
        /// `WHERE` clause is open the condition "strictly after `page.after` in the list's
        /// order", the order itself (`at`, then `id`; descending for newest-first lists) and a
        /// limit of one row more than the page holds, which [`Page::from_rows`] uses to tell
        /// whether another page follows. Never `OFFSET`: a row inserted meanwhile shifts nothing.
        fn push_keyset(
            q: &mut sqlx::QueryBuilder<'_, <$row as sqlx::Row>::Database>,
            page: &PageRequest,
            at: &str,
            id: &str,
            newest_first: bool,
        ) {
            let (cmp, dir) = if newest_first {
                ("<", "DESC")
            } else {
                (">", "ASC")
            };
            if let Some(key) = &page.after {
                let at_ms = key.at.as_millis();
                q.push(format!(" AND ({at} {cmp} ")).push_bind(at_ms);
                q.push(format!(" OR ({at} = ")).push_bind(at_ms);
                q.push(format!(" AND {id} {cmp} "));
                match &key.id {
                    KeyId::Text(t) => q.push_bind(t.clone()),
                    KeyId::Int(n) => q.push_bind(*n),
                };
                q.push("))");
            }
            q.push(format!(" ORDER BY {at} {dir}, {id} {dir} LIMIT "))
                .push_bind(i64::from(page.effective_limit()) + 1);
        }

        /// The key of a row ordered by `(created_at, id)`.
        fn created_key(at: Timestamp, id: &str) -> PageKey {
            PageKey {
                at,
                id: KeyId::Text(id.to_owned()),
            }
        }

        /// `FROM table t LEFT JOIN archived_objects a ... WHERE` for an archivable list, with
        /// archived rows left out unless `archived` includes them. Ends inside the `WHERE`.
        fn archivable_select(
            table: &str,
            kind: ArchivedKind,
            archived: ArchivedFilter,
        ) -> sqlx::QueryBuilder<'static, <$row as sqlx::Row>::Database> {
            let mut q = sqlx::QueryBuilder::new(format!(
                "SELECT t.*, a.archived_at AS archived_at FROM {table} t \
                 LEFT JOIN archived_objects a ON a.kind = '{}' AND a.id = t.id WHERE 1 = 1",
                kind.as_str()
            ));
            if archived == ArchivedFilter::Exclude {
                q.push(" AND a.id IS NULL");
            }
            q
        }

        fn archivable<T>(row: &$row, item: T) -> Result<Archivable<T>> {
            Ok(Archivable {
                item,
                archived_at: ts(row.try_get("archived_at")?),
            })
        }

        type Db = <$row as sqlx::Row>::Database;

        type WriteQuery<'q> = sqlx::query::Query<'q, Db, <Db as sqlx::Database>::Arguments<'q>>;

        /// A read on the token service's request path (`request_reads.rs`): the one row `sql`
        /// finds with `binds`, decoded by `decode`, wherever this backend runs such reads.
        async fn request_row<R: Send + 'static>(
            reads: &$crate::request_reads::RequestReads<Db>,
            sql: &'static str,
            binds: &[$crate::request_reads::Bind<'_>],
            decode: $crate::request_reads::Decode<R>,
        ) -> Result<Option<R>> {
            use $crate::request_reads::{Bind, RequestReads};
            match reads {
                RequestReads::Inline(inline) => inline.row(sql, binds, decode).await,
                RequestReads::Pool(pool) => {
                    let mut query = sqlx::query(sql);
                    for bind in binds {
                        query = match *bind {
                            Bind::Blob(b) => query.bind(b),
                            Bind::Text(t) => query.bind(t),
                            Bind::Int(i) => query.bind(i),
                            Bind::OptInt(i) => query.bind(i),
                        };
                    }
                    match query.fetch_optional(pool).await? {
                        Some(row) => decode(&row).map(Some),
                        None => Ok(None),
                    }
                }
            }
        }
        #[async_trait::async_trait]
        impl $crate::Store for $store {
            async fn ping(&self) -> Result<()> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }

            fn backend(&self) -> &'static str {
                $backend
            }

            fn pool_stats(&self) -> $crate::PoolStats {
                $crate::PoolStats {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn await_request_writes(&self) -> Result<()> {
                self.group.earlier_writes_durable().await
            }

            async fn close(&self) {
                // The follower holds a pooled connection that closing the pool would wait for.
                self.feed.stop();
                self.pool.close().await;
                self.group.close().await;
                self.close_request_connections();
            }
        }

        impl $store {
            /// How often the revocation-head follower reads the head row as a safety net for
            /// lost notifications (default [`crate::DEFAULT_REVOCATION_POLL_INTERVAL`]). Takes
            /// effect from the follower's next poll.
            pub fn set_revocation_poll_interval(&self, every: std::time::Duration) {
                self.feed.set_poll_interval(every);
            }

            /// Applies embedded migrations, refusing a schema newer than this binary.
            async fn migrate(
                pool: &sqlx::Pool<<$row as sqlx::Row>::Database>,
                migrator: &sqlx::migrate::Migrator,
                table_exists_sql: &'static str,
            ) -> Result<()> {
                let supported = migrator.iter().map(|m| m.version).max().unwrap_or(0);
                let exists: bool = sqlx::query_scalar(table_exists_sql).fetch_one(pool).await?;
                if exists {
                    let found: Option<i64> = sqlx::query_scalar(
                        "SELECT MAX(version) FROM _sqlx_migrations WHERE success",
                    )
                    .fetch_one(pool)
                    .await?;
                    if let Some(found) = found.filter(|f| *f > supported) {
                        return Err(StoreError::SchemaTooNew { found, supported });
                    }
                }
                migrator.run(pool).await?;
                Ok(())
            }
        }
    };
}

pub(crate) use impl_sql_store;
