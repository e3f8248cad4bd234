//! The PostgreSQL server the suites run against: the one named by
//! `PORTCULLIS_TEST_DATABASE_URL`. Without it a PostgreSQL case is skipped with a notice, except
//! under CI (`CI=true`), where skipping is a failure. Each case works in a fresh schema.

pub(crate) const PG_ENV: &str = "PORTCULLIS_TEST_DATABASE_URL";

/// The server's URL, or `None` (with a notice naming `case`) when none is configured outside CI.
pub(crate) fn url(case: &str) -> Option<String> {
    match std::env::var(PG_ENV) {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("CI").is_err(),
                "{PG_ENV} must be set in CI: the PostgreSQL cases may not be skipped"
            );
            eprintln!("notice: {PG_ENV} is unset; skipping PostgreSQL case `{case}`");
            None
        }
    }
}

/// A schema name no other case uses.
pub(crate) fn fresh_schema() -> String {
    format!("t_{}", uuid::Uuid::new_v4().simple())
}
