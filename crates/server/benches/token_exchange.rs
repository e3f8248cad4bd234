//! Token-exchange grants per second against client-credentials grants, in the same run and
//! the same process (DESIGN.md section 7: target >= 0.7x; one extra signature verification per
//! grant, plus the rule evaluation and the replay-table insert).
//!
//! Both go through the assembled router (`serve::assemble`, SQLite), one request at a time:
//! client credentials with `client_secret_basic`; RFC 8693 token exchange of a Kubernetes pod
//! token (ES256, keys uploaded with the trusted issuer, a fresh `jti` per request, minted
//! outside the timed section). `cargo bench -p portcullis-server --bench token_exchange`;
//! the ratio is printed at the end. The exchange writes one row (the `jti`, single use across
//! nodes) with SQLite's `synchronous = FULL`, so on a slow disk its figure is the fsync.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use http_body_util::BodyExt;
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::{Clock, Timestamp};
use portcullis_jose::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
use portcullis_jose::Alg;
use portcullis_server::config::{Config, SigningConfig};
use portcullis_server::serve::{self, Hooks};
use portcullis_store::{NewTenant, SqliteStore, Store};
use portcullis_verify::SystemClock;
use serde_json::{json, Value};
use tower::ServiceExt;

const ISS: &str = "https://kube.bench";
const AUD: &str = "https://auth.bench";

struct Bench {
    router: Router,
    basic: String,
    signer: Signer,
    _dir: tempfile::TempDir,
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, Value) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn admin(router: &Router, token: &str, path: &str, body: Value) -> Value {
    let req = Request::builder()
        .method(Method::POST)
        .uri(format!("/admin/v1/tenants/acme{path}"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("request");
    let (status, v) = send(router, req).await;
    assert_eq!(status, StatusCode::CREATED, "{path}: {v}");
    v
}

async fn setup() -> Bench {
    // `PORTCULLIS_BENCH_DIR` (say /dev/shm) takes the fsync of the replay-table insert out of
    // the figure, to see the CPU cost alone; the default measures the disk as deployed.
    let dir = match std::env::var_os("PORTCULLIS_BENCH_DIR") {
        Some(d) => tempfile::tempdir_in(d),
        None => tempfile::tempdir(),
    }
    .expect("tempdir");
    let store: Arc<dyn Store> = Arc::new(
        SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store"),
    );
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let now = clock.now();
    store
        .create_tenant(
            &NewTenant {
                id: TenantId::parse("acme").expect("tenant"),
                display_name: "acme".into(),
            },
            now,
        )
        .await
        .expect("tenant");
    let (record, credential) = portcullis_http::admin::tokens::mint(
        &TenantId::parse("acme").expect("tenant"),
        "bench".into(),
        "bench".into(),
        now,
    );
    store.insert_admin_credential(&record).await.expect("admin");
    let token = credential.expose().to_owned();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        signing: SigningConfig {
            algorithm: SigningAlgorithm::ES256,
            rotation_interval_secs: 0,
            check_interval_secs: 86_400,
            ..SigningConfig::default()
        },
        ..Config::default()
    };
    let keyring = serve::load_or_create_keyring(&config, store.as_ref())
        .await
        .expect("keyring");
    let assembled = serve::assemble(
        &config,
        "http://127.0.0.1:8080".into(),
        store,
        keyring,
        Hooks::new(clock),
    )
    .await
    .expect("assemble");
    let router = assembled.router;
    // The background tasks keep running for the process's life (the bench exits).
    std::mem::forget(assembled.tasks);
    admin(
        &router,
        &token,
        "/resource-servers",
        json!({"audience": "payments", "scopes": ["read", "write"]}),
    )
    .await;
    let client = admin(
        &router,
        &token,
        "/clients",
        json!({"name": "bench", "scopes": ["read"], "audiences": ["payments"]}),
    )
    .await;
    let basic = base64::engine::general_purpose::STANDARD.format_basic(
        client["client_id"].as_str().expect("id"),
        client["client_secret"].as_str().expect("secret"),
    );
    let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let (jwk, kid) = public_jwk_for_jwks(&pair);
    admin(
        &router,
        &token,
        "/federation/issuers",
        json!({"preset": "kubernetes", "issuer": ISS, "algorithms": ["ES256"],
               "key_source": {"kind": "jwks", "keys": {"keys": [jwk]}}}),
    )
    .await;
    admin(
        &router,
        &token,
        "/federation/rules",
        json!({"id": "payments-api", "issuer": ISS, "audience": AUD,
               "conditions": [{"claim": "namespace", "equals": "payments"},
                              {"claim": "service_account", "equals": "api"}],
               "audiences": ["payments"], "scopes": ["read"]}),
    )
    .await;
    Bench {
        router,
        basic,
        signer: Signer::new(pair, Some("JWT"), Some(&kid)),
        _dir: dir,
    }
}

trait FormatBasic {
    fn format_basic(&self, id: &str, secret: &str) -> String;
}

impl FormatBasic for base64::engine::GeneralPurpose {
    fn format_basic(&self, id: &str, secret: &str) -> String {
        format!("Basic {}", self.encode(format!("{id}:{secret}")))
    }
}

fn pod_token(b: &Bench, n: u64) -> String {
    let now = SystemClock.now().as_secs();
    b.signer
        .sign(
            &json!({"iss": ISS, "sub": "system:serviceaccount:payments:api", "aud": [AUD],
            "iat": now - 5, "nbf": now - 5, "exp": now + 600, "jti": format!("bench-{n}"),
            "kubernetes.io": {"namespace": "payments",
                              "serviceaccount": {"name": "api", "uid": "u-1"}}}),
        )
        .expect("sign")
}

fn form(path: &str, body: String, basic: Option<&str>) -> Request<Body> {
    let mut req = Request::builder()
        .method(Method::POST)
        .uri(path)
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(b) = basic {
        req = req.header(header::AUTHORIZATION, b);
    }
    req.body(Body::from(body)).expect("request")
}

fn grants(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let b = rt.block_on(setup());
    let counter = std::sync::atomic::AtomicU64::new(0);
    let mut group = c.benchmark_group("grants");
    group.measurement_time(Duration::from_secs(5));
    group.bench_function("client_credentials", |bench| {
        bench.iter(|| {
            let (s, v) = rt.block_on(send(
                &b.router,
                form(
                    "/oauth2/token",
                    "grant_type=client_credentials".into(),
                    Some(&b.basic),
                ),
            ));
            assert_eq!(s, StatusCode::OK, "{v}");
        })
    });
    group.bench_function("token_exchange", |bench| {
        bench.iter_batched(
            || {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
                     &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt\
                     &subject_token={}",
                    pod_token(&b, n)
                )
            },
            |body| {
                let (s, v) = rt.block_on(send(
                    &b.router,
                    form("/oauth2/tenants/acme/token", body, None),
                ));
                assert_eq!(s, StatusCode::OK, "{v}");
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();

    // The ratio, from one more timed pass of each, same process, alternating.
    let rounds = 3;
    let per_round = 300u64;
    let (mut cc, mut te) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        for _ in 0..per_round {
            let _ = rt.block_on(send(
                &b.router,
                form(
                    "/oauth2/token",
                    "grant_type=client_credentials".into(),
                    Some(&b.basic),
                ),
            ));
        }
        cc.push(per_round as f64 / start.elapsed().as_secs_f64());
        let bodies: Vec<String> = (0..per_round)
            .map(|_| {
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                format!(
                    "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Atoken-exchange\
                     &subject_token_type=urn%3Aietf%3Aparams%3Aoauth%3Atoken-type%3Ajwt\
                     &subject_token={}",
                    pod_token(&b, n)
                )
            })
            .collect();
        let start = Instant::now();
        for body in bodies {
            let _ = rt.block_on(send(
                &b.router,
                form("/oauth2/tenants/acme/token", body, None),
            ));
        }
        te.push(per_round as f64 / start.elapsed().as_secs_f64());
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (cc, te) = (median(&mut cc), median(&mut te));
    println!(
        "token_exchange {te:.0} grants/s, client_credentials {cc:.0} grants/s, ratio {:.2}x (target >= 0.7x)",
        te / cc
    );
    let _ = Timestamp::from_secs(0);
}

criterion_group!(benches, grants);
criterion_main!(benches);
