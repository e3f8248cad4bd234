//! `portcullis backup`, `export` and `import`: commands that work on the database directly (on
//! the server's host, with its configuration), not through the admin API.
//!
//! They stay thin: the store crate takes the backup (`SqliteStore::backup_to`) and moves the data
//! (`portcullis_store::export`); this module resolves the database from the configuration, picks
//! file names and prints progress. It must never decrypt a signing key or print a secret: an
//! export carries digests and sealed blobs only, and the KEK is not needed to make one.

use std::path::{Path, PathBuf};

use crate::new_file::NewFile;

use anyhow::{bail, Context};
use portcullis_server::config::{DatabaseLocation, FlagOverrides};
use portcullis_store::{SqliteStore, Store as _};

use crate::LocalArgs;

#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    /// Where to write the backup (a new file; an existing one is never overwritten).
    pub file: PathBuf,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// `portcullis backup FILE`: an online, consistent copy of the SQLite database, checked before it
/// is put in place.
pub async fn backup(args: BackupArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args.local, FlagOverrides::default())?;
    let source = match config.database()? {
        DatabaseLocation::SqliteFile(path) => {
            if !path.is_file() {
                bail!(
                    "no database at {}: check --data-dir / --config",
                    path.display()
                );
            }
            SqliteStore::open(&path)
                .await
                .with_context(|| format!("could not open database {}", path.display()))?
        }
        DatabaseLocation::SqliteUrl(url) => SqliteStore::open_url(url.expose())
            .await
            .context("could not open the SQLite database")?,
        DatabaseLocation::Postgres(_) => bail!(
            "`portcullis backup` copies the embedded SQLite database; this installation uses \
             PostgreSQL: back it up with pg_dump (see \"Backing up PostgreSQL\" in \
             docs/operations.md)"
        ),
    };
    // Written beside the destination and put in place once checked (crate::new_file).
    let file = match NewFile::reserve(&args.file) {
        Ok(f) => f,
        Err(e) => {
            source.close().await;
            return Err(e);
        }
    };
    let result = write_checked(&source, file.partial()).await;
    source.close().await;
    result?;
    file.publish()?;
    let (path, explicit) = config.kek_path();
    println!("backup written to {}", args.file.display());
    println!(
        "signing keys in it are sealed under the KEK in {}{}: keep that file (every KEK id \
         in it) for as long as you keep this backup",
        path.display(),
        if explicit {
            ""
        } else {
            " (the data directory)"
        }
    );
    Ok(())
}

async fn write_checked(source: &SqliteStore, partial: &Path) -> anyhow::Result<()> {
    source
        .backup_to(partial)
        .await
        .context("could not write the backup")?;
    let check = SqliteStore::check_file(partial)
        .await
        .context("could not read the backup back")?;
    if !check.problems.is_empty() {
        bail!(
            "the backup failed SQLite's integrity check: {}",
            check.problems.join("; ")
        );
    }
    Ok(())
}

#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// Where to write the export (a new file, created 0600: it holds credential digests and
    /// sealed signing keys).
    pub file: PathBuf,
    #[command(flatten)]
    pub local: LocalArgs,
}

#[derive(Debug, clap::Args)]
pub struct ImportArgs {
    /// An export written by `portcullis export`.
    pub file: PathBuf,
    #[command(flatten)]
    pub local: LocalArgs,
}

/// Progress lines on stderr every this many records.
const PROGRESS_EVERY: u64 = 10_000;

/// `portcullis export FILE`: every record of the configured database, one consistent snapshot.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let config = crate::load_config(&args.local, FlagOverrides::default())?;
    if let DatabaseLocation::SqliteFile(path) = config.database()? {
        if !path.is_file() {
            bail!(
                "no database at {}: check --data-dir / --config",
                path.display()
            );
        }
    }
    let new_file = NewFile::reserve(&args.file)?;
    let store = portcullis_server::serve::open_store(&config).await?;
    let file = match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(new_file.partial())
    {
        Ok(f) => f,
        Err(e) => {
            store.close().await;
            return Err(e)
                .with_context(|| format!("could not create {}", new_file.partial().display()));
        }
    };
    let mut out = std::io::BufWriter::new(file);
    let written = portcullis_store::export::write_export(
        store.as_ref(),
        &mut out,
        now(),
        PROGRESS_EVERY,
        &mut |n| eprintln!("exported {n} records"),
    )
    .await;
    store.close().await;
    let result = written.map_err(anyhow::Error::from).and_then(|n| {
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        Ok(n)
    });
    let n = result.context("could not write the export")?;
    new_file.publish()?;
    println!(
        "exported {n} records (format {} version {}) to {}",
        portcullis_store::export::FORMAT,
        portcullis_store::export::FORMAT_VERSION,
        args.file.display()
    );
    Ok(())
}

/// `portcullis import FILE`: everything in an export, into an empty database, all or nothing.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
    let config = crate::load_config(&args.local, FlagOverrides::default())?;
    let file = std::fs::File::open(&args.file)
        .with_context(|| format!("could not open {}", args.file.display()))?;
    let mut reader = portcullis_store::export::ExportReader::new(std::io::BufReader::new(file))
        .with_context(|| format!("could not read {}", args.file.display()))?;
    if let DatabaseLocation::SqliteFile(_) = config.database()? {
        portcullis_server::serve::prepare_data_dir(&config.data_dir)?;
    }
    let store = portcullis_server::serve::open_store(&config).await?;
    let blockers = store.import_blockers().await?;
    if !blockers.is_empty() {
        store.close().await;
        bail!(
            "the target database is not empty (rows in: {}); import only into a new database \
             (never started with `portcullis serve`)",
            blockers.join(", ")
        );
    }
    eprintln!(
        "importing an export of a {} installation into {}",
        reader.header().source_backend,
        store.backend()
    );
    let mut shown = std::collections::HashMap::<&str, u64>::new();
    let counts = store
        .import_records(&mut reader, &mut |kind, n| {
            // One line per PROGRESS_EVERY records of a kind, and the kind's total.
            let last = shown.entry(kind).or_insert(0);
            if n / PROGRESS_EVERY > *last / PROGRESS_EVERY || n < PROGRESS_EVERY {
                eprintln!("imported {n} {kind} records");
                *last = n;
            }
        })
        .await;
    let keys = match &counts {
        Ok(_) => store.list_signing_keys().await.unwrap_or_default(),
        Err(_) => Vec::new(),
    };
    store.close().await;
    let counts = counts.context("import failed; nothing was written")?;
    for (kind, n) in &counts.0 {
        println!("{kind}: {n}");
    }
    println!("imported {} records", counts.total());
    // The signing keys arrive sealed: the new installation needs the KEK that sealed them.
    let (kek_path, _) = config.kek_path();
    let ring = portcullis_service::kek::Keyring::read(&kek_path).ok();
    let missing: std::collections::BTreeSet<&str> = keys
        .iter()
        .map(|k| k.kek_id.as_str())
        .filter(|id| !ring.as_ref().is_some_and(|r| r.contains(id)))
        .collect();
    if !missing.is_empty() {
        eprintln!(
            "warning: the imported signing keys are sealed under KEK id(s) {} that {} does not \
             hold; copy the source installation's KEK file there (or set kek_file) before \
             `portcullis serve`",
            missing.into_iter().collect::<Vec<_>>().join(", "),
            kek_path.display()
        );
    }
    Ok(())
}

fn now() -> portcullis_core::time::Timestamp {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    portcullis_core::time::Timestamp::from_millis(ms)
}
