use thiserror::Error;

#[derive(Debug, Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("already exists")]
    Conflict,
    #[error(
        "the database schema is at version {found}, newer than this binary supports \
         (up to {supported}); run a newer portcullis, or point this one at another database"
    )]
    SchemaTooNew { found: i64, supported: i64 },
    #[error("could not migrate the database: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("not a usable export: {0}")]
    Export(String),
    #[error(
        "the database is not empty (rows in: {0}); import only into a new database, migrated \
         but never served"
    )]
    NotEmpty(String),
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// From a read SQLite ran on the calling thread (`request_reads.rs`).
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
}

impl StoreError {
    pub(crate) fn from_write(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => Self::Conflict,
            sqlx::Error::Database(db) if db.is_foreign_key_violation() => Self::NotFound,
            _ => Self::Database(e),
        }
    }

    /// [`Self::from_write`] for a write through rusqlite (`inline_write.rs`).
    pub(crate) fn from_inline_write(e: Self) -> Self {
        use rusqlite::ffi;
        let Self::Sqlite(rusqlite::Error::SqliteFailure(failure, _)) = &e else {
            return e;
        };
        match failure.extended_code {
            ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => Self::Conflict,
            ffi::SQLITE_CONSTRAINT_FOREIGNKEY => Self::NotFound,
            _ => e,
        }
    }
}
