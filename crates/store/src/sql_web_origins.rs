//! The SQL of [`crate::WebOriginStore`]: whether an active client registered a browser origin,
//! for the CORS preflights of the token and userinfo endpoints (a preflight names no client).
//! Expanded for each backend beside `impl_sql_store!`. Origins are stored space-separated in
//! `oauth_clients.allowed_web_origins` (an origin holds no space), so the match is an exact
//! token match, never a prefix: `LIKE` wildcards in the asked origin are escaped.
//!
//! This module must never match an origin by prefix or pattern.

macro_rules! impl_web_origin_store {
    ($store:ty) => {
        #[async_trait::async_trait]
        impl $crate::WebOriginStore for $store {
            async fn web_origin_registered(&self, origin: &str) -> Result<bool> {
                if origin.is_empty() || origin.contains(' ') {
                    return Ok(false);
                }
                let escaped = origin
                    .replace('\\', "\\\\")
                    .replace('%', "\\%")
                    .replace('_', "\\_");
                // COUNT(*) is a 64-bit integer on both backends; the inner LIMIT stops at one.
                let found: i64 = sqlx::query_scalar(
                    "SELECT COUNT(*) FROM (SELECT 1 FROM oauth_clients \
                     WHERE status = 'active' \
                     AND (' ' || allowed_web_origins || ' ') LIKE $1 ESCAPE '\\' LIMIT 1) AS hit",
                )
                .bind(format!("% {escaped} %"))
                .fetch_one(&self.pool)
                .await?;
                Ok(found > 0)
            }

            async fn registered_web_origins(&self) -> Result<Vec<String>> {
                let rows: Vec<String> = sqlx::query_scalar(
                    "SELECT allowed_web_origins FROM oauth_clients \
                     WHERE status = 'active' AND allowed_web_origins <> ''",
                )
                .fetch_all(&self.pool)
                .await?;
                let mut origins: Vec<String> = rows
                    .iter()
                    .flat_map(|r| r.split(' '))
                    .filter(|o| !o.is_empty())
                    .map(str::to_owned)
                    .collect();
                origins.sort();
                origins.dedup();
                Ok(origins)
            }
        }
    };
}

pub(crate) use impl_web_origin_store;
