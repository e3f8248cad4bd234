//! In-process API key verification with 1,000 and 1,000,000 keys stored, on SQLite and
//! PostgreSQL (DESIGN.md section 7: p99 under 1 ms, 1M-key figures within 1.2x of 1k-key ones).
//!
//! For each backend and key count it populates one database (once), then measures three ways of
//! verifying keys sampled evenly across the whole table:
//!
//! * `warm`: [`ApiKeyVerifier::verify`] on 1,000 keys already in its cache (capacity 100,000,
//!   the default; TTL one hour so no entry expires mid-run). A hit still runs the whole decision on
//!   the cached facts: digest comparison, revocation, rotation window, enabled, expiry,
//!   environment, tenant, IP allowlist and scopes. It reads no storage.
//! * `cold`: the same verifier with a cache of one entry and a different key every call (up to
//!   10,000 keys spread over the table), so every verification reads storage (the key, then its
//!   tenant's status).
//! * `naive`: the baseline: parse the key, one query by key id, constant-time digest compare.
//!   No cache, no other check.
//!
//! Criterion reports the mean per verification. For percentiles the benchmark also times
//! individual verifications with `Instant` (one caller, one after the other, each through a
//! `block_on`) in 5 rounds that alternate key counts and modes, as `bench/run` alternates peer and
//! Portcullis, and prints the median p50, p99 and verifications per second with the 1M/1k and
//! naive ratios and the load average.
//!
//! ```sh
//! PORTCULLIS_TEST_DATABASE_URL=postgres://postgres@127.0.0.1:5432/test \
//!     cargo bench -p portcullis-server --bench api_key_verify
//! PORTCULLIS_BENCH_KEYS=1000,10000 cargo bench -p portcullis-server --bench api_key_verify
//! ```
//!
//! `bench/run` drives it with `PORTCULLIS_BENCH_ROUNDS` (default 5), `PORTCULLIS_BENCH_SAMPLES`
//! (timed cold and naive verifications per case and round, default 10,000; warm ones are ten
//! times as many) and `PORTCULLIS_BENCH_JSON` (a file to write the medians to), so that its
//! smoke and quick modes stay short.
//!
//! Without `PORTCULLIS_TEST_DATABASE_URL` the PostgreSQL cases are skipped with a notice. Each
//! PostgreSQL case uses a private schema, dropped at the end. Timing never appears in tests.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::Criterion;
use portcullis_core::api_key::ScopeSet;
use portcullis_core::credential::{Credential, CredentialKind, Environment};
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_server::config::AuditConfig;
use portcullis_service::api_keys::{ApiKeyVerifier, VerifierSettings, VerifyRequest};
use portcullis_service::audit::{self, AuditWriter, RequestOrigin};
use portcullis_store::{ApiKeyRecord, NewTenant, PgStore, SqliteStore, Store};
use portcullis_verify::SystemClock;
use rand::{rngs::StdRng, SeedableRng};

const PG_ENV: &str = "PORTCULLIS_TEST_DATABASE_URL";
const KEYS_ENV: &str = "PORTCULLIS_BENCH_KEYS";
const ROUNDS_ENV: &str = "PORTCULLIS_BENCH_ROUNDS";
const SAMPLES_ENV: &str = "PORTCULLIS_BENCH_SAMPLES";
const JSON_ENV: &str = "PORTCULLIS_BENCH_JSON";
/// Keys whose plaintext is kept for presenting, spread evenly over the table.
const MAX_PRESENTED: usize = 10_000;
/// Distinct keys the warm cases cycle through: the same for every key count, so the 1M/1k ratio
/// measures the size of the table, not of the working set (a larger working set is slower for
/// memory-cache reasons alone: about 1 µs more at 10,000 keys).
const WARM_KEYS: usize = 1_000;
/// Rounds of percentile measurement; within a round every key count and mode runs once, so load
/// from other work on a shared machine falls on all of them alike. Medians are reported.
/// Default of `PORTCULLIS_BENCH_ROUNDS`.
const ROUNDS: usize = 5;
/// Individual verifications timed per case and round (warm ones are ~1 µs each, so ten times as
/// many of those). Default of `PORTCULLIS_BENCH_SAMPLES`.
const SAMPLES: usize = 10_000;
const WARM_FACTOR: usize = 10;
/// Keys generated and inserted per transaction while populating.
const POPULATE_BATCH: usize = 20_000;
const TENANTS: usize = 10;
const CLIENT_IP: [u8; 4] = [10, 1, 2, 3];

#[derive(Debug, Clone, Copy, PartialEq)]
enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Warm,
    Cold,
    Naive,
}

impl Mode {
    const ALL: [Mode; 3] = [Mode::Warm, Mode::Cold, Mode::Naive];

    fn name(self) -> &'static str {
        match self {
            Self::Warm => "warm",
            Self::Cold => "cold",
            Self::Naive => "naive",
        }
    }
}

/// A populated database and the keys to present.
struct Fixture {
    store: Arc<dyn Store>,
    presented: Vec<(String, TenantId)>,
    /// Keeps the SQLite file alive.
    _dir: Option<tempfile::TempDir>,
    /// The PostgreSQL pool and private schema, dropped at the end.
    pg: Option<(sqlx::PgPool, String)>,
}

impl Fixture {
    async fn open(backend: Backend, keys: usize) -> Option<Self> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("tempdir");
                let store = SqliteStore::open(&dir.path().join("bench.db"))
                    .await
                    .expect("open sqlite");
                Some(Self {
                    store: Arc::new(store),
                    presented: Vec::new(),
                    _dir: Some(dir),
                    pg: None,
                })
            }
            Backend::Postgres => {
                let url = std::env::var(PG_ENV).ok()?;
                let schema = format!("bench_akv_{keys}_{}", std::process::id());
                let store = PgStore::connect_in_schema(&url, &schema)
                    .await
                    .expect("PostgreSQL named by PORTCULLIS_TEST_DATABASE_URL must be reachable");
                let pool = store.pool().clone();
                Some(Self {
                    store: Arc::new(store),
                    presented: Vec::new(),
                    _dir: None,
                    pg: Some((pool, schema)),
                })
            }
        }
    }

    /// Stores `n` keys over [`TENANTS`] tenants, built as the admin API's `create` builds them
    /// (core's `Credential::generate`, SHA-256 digest, display prefix), keeping the plaintext of
    /// every (n / MAX_PRESENTED)-th key.
    async fn populate(&mut self, n: usize) {
        let now = SystemClock.now();
        let tenants: Vec<TenantId> = (0..TENANTS)
            .map(|i| TenantId::parse(&format!("tenant-{i}")).expect("tenant id"))
            .collect();
        for t in &tenants {
            self.store
                .create_tenant(
                    &NewTenant {
                        id: t.clone(),
                        display_name: t.to_string(),
                    },
                    now,
                )
                .await
                .expect("create tenant");
        }
        let stride = (n / MAX_PRESENTED).max(1);
        let mut rng = StdRng::seed_from_u64(n as u64);
        let mut batch = Vec::with_capacity(POPULATE_BATCH);
        for i in 0..n {
            let tenant = &tenants[i % TENANTS];
            let credential =
                Credential::generate(CredentialKind::ApiKey, Environment::live(), &mut rng);
            if i % stride == 0 && self.presented.len() < MAX_PRESENTED {
                self.presented
                    .push((credential.expose().to_owned(), tenant.clone()));
            }
            batch.push(record(&credential, tenant, i, now));
            if batch.len() == POPULATE_BATCH || i + 1 == n {
                self.store
                    .insert_api_keys(&batch)
                    .await
                    .expect("insert keys");
                batch.clear();
            }
        }
        if let Some((pool, _)) = &self.pg {
            // Fresh statistics, as autovacuum would give a long-running installation.
            sqlx::query("ANALYZE api_keys")
                .execute(pool)
                .await
                .expect("analyze");
        }
    }

    /// Drops the PostgreSQL schema, then closes the store. (The pool is the store's own, so the
    /// schema must go first: a closed pool runs nothing.)
    async fn cleanup(self) {
        if let Some((pool, schema)) = &self.pg {
            if let Err(e) = sqlx::query(&format!("DROP SCHEMA {schema} CASCADE"))
                .execute(pool)
                .await
            {
                eprintln!("warning: could not drop schema {schema}: {e}");
            }
        }
        self.store.close().await;
    }
}

/// The record the admin API's `create` stores for a fresh key, with every restriction a
/// verification checks present: expiry, IP allowlist, scopes.
fn record(credential: &Credential, tenant: &TenantId, i: usize, now: Timestamp) -> ApiKeyRecord {
    ApiKeyRecord {
        id: credential.id().to_owned(),
        tenant: tenant.clone(),
        environment: credential.environment().to_string(),
        name: format!("key-{i}"),
        description: String::new(),
        owner: format!("partner-{}", i % 1_000),
        scopes: "orders:read orders:write".into(),
        audiences: None,
        ip_allowlist: Some("10.0.0.0/8 192.0.2.0/24".into()),
        rate_limit_requests: None,
        rate_limit_window_secs: None,
        metadata: "{}".into(),
        display_prefix: credential.display_prefix(),
        digest: credential.digest().to_vec(),
        created_at: now,
        created_by: Some("bench".into()),
        expires_at: Some(now.saturating_add(Duration::from_secs(90 * 86_400))),
        disabled_at: None,
        revoked_at: None,
        revoked_reason: None,
        replaced_by: None,
        rotation_overlap_ends_at: None,
        last_used_at: None,
        last_used_ip: None,
    }
}

/// One way of verifying, over a fixture's store.
struct Case {
    mode: Mode,
    store: Arc<dyn Store>,
    verifier: Option<ApiKeyVerifier>,
    writer: Option<AuditWriter>,
    scopes: ScopeSet,
    origin: RequestOrigin,
    next: AtomicUsize,
}

impl Case {
    fn new(mode: Mode, store: Arc<dyn Store>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(SystemClock);
        let (verifier, writer) = if mode == Mode::Naive {
            (None, None)
        } else {
            let (sink, writer) =
                audit::spawn(store.clone(), clock.clone(), &AuditConfig::default());
            let settings = VerifierSettings {
                environment: Environment::live(),
                cache_capacity: if mode == Mode::Warm { 100_000 } else { 1 },
                cache_ttl: Duration::from_secs(3_600),
            };
            (
                Some(ApiKeyVerifier::new(store.clone(), clock, sink, settings)),
                Some(writer),
            )
        };
        Self {
            mode,
            store,
            verifier,
            writer,
            scopes: ScopeSet::parse_spaced("orders:read").expect("scopes"),
            origin: RequestOrigin {
                request_id: None,
                client_ip: Some(CLIENT_IP.into()),
                user_agent: None,
            },
            next: AtomicUsize::new(0),
        }
    }

    /// Verifies the next presented key (round robin); panics if a good key is refused, since a
    /// figure for a broken verification would be meaningless.
    async fn verify_next(&self, presented: &[(String, TenantId)]) {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % presented.len();
        let (key, tenant) = &presented[i];
        let ok = match &self.verifier {
            Some(v) => {
                let req = VerifyRequest {
                    presented: key,
                    tenant: Some(tenant),
                    environment: None,
                    client_ip: Some(CLIENT_IP.into()),
                    audience: None,
                    required_scopes: &self.scopes,
                    enforce_rate_limit: true,
                };
                v.verify(&req, &self.origin).await.is_ok()
            }
            None => naive_verify(self.store.as_ref(), key).await,
        };
        assert!(ok, "{} verification refused a good key", self.mode.name());
    }

    async fn finish(self) {
        if let Some(w) = self.writer {
            w.shutdown().await;
        }
    }
}

/// The baseline: one query by key id and a constant-time digest comparison, nothing else.
async fn naive_verify(store: &dyn Store, presented: &str) -> bool {
    let Ok(credential) = Credential::parse(presented) else {
        return false;
    };
    match store.get_api_key(credential.id()).await {
        Ok(Some(r)) => constant_time_eq(&r.digest, &credential.digest()),
        _ => false,
    }
}

/// One round's percentiles of one case.
#[derive(Debug, Clone, Copy)]
struct Round {
    p50_us: f64,
    p99_us: f64,
    per_sec: f64,
}

/// The medians over the rounds of one case, and the spread of its p99.
#[derive(Debug, Clone)]
struct Figures {
    backend: Backend,
    keys: usize,
    mode: Mode,
    p50_us: f64,
    p99_us: f64,
    p99_min_us: f64,
    p99_max_us: f64,
    per_sec: f64,
}

impl Figures {
    fn new(backend: Backend, keys: usize, mode: Mode, rounds: &[Round]) -> Self {
        let median = |f: fn(&Round) -> f64| {
            let mut v: Vec<f64> = rounds.iter().map(f).collect();
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        let p99s = rounds.iter().map(|r| r.p99_us);
        Self {
            backend,
            keys,
            mode,
            p50_us: median(|r| r.p50_us),
            p99_us: median(|r| r.p99_us),
            p99_min_us: p99s.clone().fold(f64::INFINITY, f64::min),
            p99_max_us: p99s.fold(0.0, f64::max),
            per_sec: median(|r| r.per_sec),
        }
    }
}

/// A positive count from the environment, or the default.
fn env_count(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .replace('_', "")
            .parse()
            .ok()
            .filter(|&n: &usize| n > 0)
            .unwrap_or_else(|| panic!("{name}: a positive integer")),
        Err(_) => default,
    }
}

/// Times `samples` (ten times as many warm) verifications one by one, each including a
/// `block_on`.
fn percentiles(
    rt: &tokio::runtime::Runtime,
    case: &Case,
    presented: &[(String, TenantId)],
    samples: usize,
) -> Round {
    let samples = if case.mode == Mode::Warm {
        samples * WARM_FACTOR
    } else {
        samples
    };
    let mut times: Vec<Duration> = Vec::with_capacity(samples);
    let started = Instant::now();
    for _ in 0..samples {
        let t = Instant::now();
        rt.block_on(case.verify_next(presented));
        times.push(t.elapsed());
    }
    let total = started.elapsed();
    times.sort_unstable();
    let at = |q: f64| {
        let i = ((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1e6
    };
    Round {
        p50_us: at(0.50),
        p99_us: at(0.99),
        per_sec: samples as f64 / total.as_secs_f64(),
    }
}

fn key_counts() -> Vec<usize> {
    match std::env::var(KEYS_ENV) {
        Ok(v) => v
            .split(',')
            .map(|s| {
                s.trim()
                    .replace('_', "")
                    .parse()
                    .expect("PORTCULLIS_BENCH_KEYS: comma-separated key counts")
            })
            .collect(),
        Err(_) => vec![1_000, 1_000_000],
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    // The audit writer each verifier needs is spawned onto this runtime.
    let _runtime = rt.enter();
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    let counts = key_counts();
    let rounds_wanted = env_count(ROUNDS_ENV, ROUNDS);
    let samples = env_count(SAMPLES_ENV, SAMPLES);
    let mut results: Vec<Figures> = Vec::new();

    for backend in [Backend::Sqlite, Backend::Postgres] {
        // Every key count's database stays open for the whole backend, so rounds alternate.
        let mut fixtures: Vec<(usize, Fixture)> = Vec::new();
        for &n in &counts {
            let Some(mut fixture) = rt.block_on(Fixture::open(backend, n)) else {
                eprintln!("notice: {PG_ENV} is unset; skipping the PostgreSQL cases");
                break;
            };
            let started = Instant::now();
            rt.block_on(fixture.populate(n));
            println!(
                "{}: populated {n} keys in {:.1} s ({} presented)",
                backend.name(),
                started.elapsed().as_secs_f64(),
                fixture.presented.len()
            );
            fixtures.push((n, fixture));
        }
        let presented = |fixture: &Fixture, mode: Mode| -> std::ops::Range<usize> {
            match mode {
                Mode::Warm => 0..fixture.presented.len().min(WARM_KEYS),
                Mode::Cold | Mode::Naive => 0..fixture.presented.len(),
            }
        };
        let mut cases: Vec<(usize, Case, Vec<Round>)> = Vec::new();
        for (i, (_, fixture)) in fixtures.iter().enumerate() {
            for mode in Mode::ALL {
                let case = Case::new(mode, fixture.store.clone());
                if mode == Mode::Warm {
                    let keys = &fixture.presented[presented(fixture, mode)];
                    for _ in 0..keys.len() {
                        rt.block_on(case.verify_next(keys));
                    }
                    let cached = case.verifier.as_ref().map_or(0, |v| v.cached_len());
                    assert_eq!(cached, keys.len(), "every presented key is cached");
                }
                cases.push((i, case, Vec::new()));
            }
        }
        for round in 1..=rounds_wanted {
            for (i, case, rounds) in &mut cases {
                let (n, fixture) = &fixtures[*i];
                let keys = &fixture.presented[presented(fixture, case.mode)];
                let r = percentiles(&rt, case, keys, samples);
                println!(
                    "round {round}/{rounds_wanted} {}/{n}/{}: p50 {:.1} µs, p99 {:.1} µs, {:.0} verifications/s",
                    backend.name(),
                    case.mode.name(),
                    r.p50_us,
                    r.p99_us,
                    r.per_sec
                );
                rounds.push(r);
            }
        }
        for (i, case, rounds) in cases {
            let (n, fixture) = &fixtures[i];
            let keys = &fixture.presented[presented(fixture, case.mode)];
            criterion.bench_function(
                &format!("api_key_verify/{}/{n}/{}", backend.name(), case.mode.name()),
                |b| b.iter(|| rt.block_on(case.verify_next(keys))),
            );
            results.push(Figures::new(backend, *n, case.mode, &rounds));
            rt.block_on(case.finish());
        }
        for (_, fixture) in fixtures {
            rt.block_on(fixture.cleanup());
        }
    }
    criterion.final_summary();
    summary(&results, &counts, rounds_wanted);
    if let Ok(path) = std::env::var(JSON_ENV) {
        std::fs::write(&path, json(&results)).expect("write PORTCULLIS_BENCH_JSON");
    }
}

/// The medians as a JSON array, one object per backend, key count and mode, for `bench/run`.
fn json(results: &[Figures]) -> String {
    let rows: Vec<serde_json::Value> = results
        .iter()
        .map(|f| {
            serde_json::json!({
                "backend": f.backend.name(),
                "keys": f.keys,
                "mode": f.mode.name(),
                "p50_us": f.p50_us,
                "p99_us": f.p99_us,
                "p99_min_us": f.p99_min_us,
                "p99_max_us": f.p99_max_us,
                "per_s": f.per_sec,
            })
        })
        .collect();
    serde_json::Value::from(rows).to_string()
}

fn summary(results: &[Figures], counts: &[usize], rounds: usize) {
    let smallest = counts.iter().copied().min().unwrap_or(0);
    let find = |b: Backend, n: usize, m: Mode| {
        results
            .iter()
            .find(|f| f.backend == b && f.keys == n && f.mode == m)
    };
    println!();
    println!(
        "cores: {}, load average: {}; medians of {rounds} rounds, p99 range in brackets",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|_| "unknown".into())
    );
    println!(
        "| backend | keys | mode | p50 µs | p99 µs | verifications/s | p50, p99 vs {smallest} keys | verifications/s vs naive |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for f in results {
        let vs_small = find(f.backend, smallest, f.mode)
            .map(|s| format!("{:.2}x, {:.2}x", f.p50_us / s.p50_us, f.p99_us / s.p99_us))
            .unwrap_or_default();
        let vs_naive = find(f.backend, f.keys, Mode::Naive)
            .map(|s| format!("{:.2}x", f.per_sec / s.per_sec))
            .unwrap_or_default();
        println!(
            "| {} | {} | {} | {:.1} | {:.1} [{:.1}-{:.1}] | {:.0} | {vs_small} | {vs_naive} |",
            f.backend.name(),
            f.keys,
            f.mode.name(),
            f.p50_us,
            f.p99_us,
            f.p99_min_us,
            f.p99_max_us,
            f.per_sec
        );
    }
}
