//! Appends a large number of chained audit events to a Portcullis database, for the
//! `audit_verify` scenario of `bench/run` (issue 19: `portcullis audit verify` over 1,000,000
//! events in under 10 s).
//!
//! The events go through the store's own append ([`AuditStore::append_audit_events`]), the code
//! the audit writer uses, so positions and hashes come from the same chaining code and the
//! result is a chain `audit verify` must accept. Nothing here computes a hash itself. One batch
//! per transaction, like the writer, but larger (1,000 events) so a million take seconds, not
//! the minutes that as many HTTP requests would.
//!
//! ```sh
//! cargo run --release -p portcullis-store --example audit_fill -- DATA_DIR/portcullis.db 1000000
//! ```
//!
//! The database must not be in use by a running `serve` (stop it first: the chain head row is
//! the writers' lock, and a concurrent serve would interleave its own events, which is fine for
//! the chain but not for the count printed). Prints one JSON line: events appended, seconds.
//! A benchmark helper, never used by the product.

use std::path::Path;
use std::time::Instant;

use portcullis_core::audit::{Action, Actor, AuditEvent, Outcome, Reason};
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Timestamp;
use portcullis_store::{AuditStore, PgStore, SqliteStore};

const BATCH: usize = 1_000;

/// A mix shaped like a busy token endpoint: mostly successful issuance, some failed client
/// authentications with a reason, each with an address, user agent, request id and target.
fn event(n: u64, at: Timestamp, tenant: &TenantId) -> AuditEvent {
    let client = format!("client_{:06}", n % 500);
    let failed = n.is_multiple_of(10);
    AuditEvent {
        id: uuid::Uuid::now_v7().to_string(),
        occurred_at: at,
        tenant: tenant.clone(),
        actor: if failed {
            Actor::anonymous()
        } else {
            Actor::client(&client)
        },
        credential_id: Some(client),
        client_ip: Some(format!("10.{}.{}.{}", n % 7, (n / 7) % 250, n % 250)),
        user_agent: Some("bench-client/1.0 (audit_fill)".to_owned()),
        action: if failed {
            Action::OAuthClientAuth
        } else {
            Action::OAuthTokenIssue
        },
        outcome: if failed {
            Outcome::Failure
        } else {
            Outcome::Success
        },
        reason: failed.then(|| Reason::new("secret_mismatch")),
        request_id: Some(format!("req-{n:012}")),
        target: (!failed).then(|| "payments-api".to_owned()),
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(db), Some(count)) = (args.next(), args.next()) else {
        return Err(
            "usage: audit_fill <sqlite path | sqlite:// or postgres:// URL> <count>".into(),
        );
    };
    let count: u64 = count.parse().map_err(|_| "count must be a number")?;
    let store: Box<dyn AuditStore> = if db.starts_with("postgres://") {
        Box::new(PgStore::connect(&db).await?)
    } else if db.starts_with("sqlite:") {
        Box::new(SqliteStore::open_url(&db).await?)
    } else {
        Box::new(SqliteStore::open(Path::new(&db)).await?)
    };
    let tenant = TenantId::parse("bench").map_err(|_| "tenant id")?;
    // A millisecond apart, ending about now, so retention and `--since` behave as for real data.
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis() as i64;
    let start = now_ms - count as i64;
    let started = Instant::now();
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(BATCH);
    while n < count {
        batch.clear();
        while batch.len() < BATCH && n < count {
            batch.push(event(n, Timestamp::from_millis(start + n as i64), &tenant));
            n += 1;
        }
        store.append_audit_events(&batch).await?;
    }
    println!(
        "{{\"appended\": {count}, \"seconds\": {:.3}}}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
