//! The work one refresh grant and one code-flow round (authorization request with a session ->
//! code -> token request with the PKCE verifier) cost, in process, through the assembled router
//! (`serve::assemble`, SQLite), for `bench/user-grant-instructions` to count under valgrind's
//! callgrind (instruction counts do not depend on the machine's load; wall-clock figures do).
//!
//!     user_grants_callgrind refresh 200      # 200 refresh grants, one chain of rotations
//!     user_grants_callgrind code_flow 200    # 200 code flows with one signed-in session
//!
//! The set-up is the same as `bench/run --scenario refresh` / `--scenario code_flow`: a
//! first-party public native client allowed `openid offline_access`, one signed-in user; every
//! refresh grant presents the successor the previous one returned. Only [`measured`] is meant
//! to be counted with `--toggle-collect` (the request path on this thread); the SQLite worker
//! thread and the audit writer run on other threads, which is why the script also counts the
//! whole process at two values of `n` and takes the difference. `PORTCULLIS_BENCH_DIR` puts
//! the database elsewhere (say /dev/shm).

use std::sync::Arc;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use http_body_util::BodyExt;
use portcullis_core::audit::Actor;
use portcullis_core::signing::SigningAlgorithm;
use portcullis_core::tenant::TenantId;
use portcullis_core::time::Clock;
use portcullis_core::user::{UserId, UserStatus, Username};
use portcullis_server::config::{Config, SigningConfig};
use portcullis_server::serve::{self, Hooks};
use portcullis_service::audit::RequestOrigin;
use portcullis_service::sign_in::NewSession;
use portcullis_store::{NewTenant, SqliteStore, Store, UserRecord};
use portcullis_verify::SystemClock;
use serde_json::{json, Value};
use tower::ServiceExt;

const ISSUER: &str = "http://127.0.0.1:8080";
const REDIRECT: &str = "http://127.0.0.1/callback";
const VERIFIER: &str = "bench-verifier-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx";

struct Bench {
    router: Router,
    client_id: String,
    cookie: String,
    _dir: tempfile::TempDir,
}

async fn send(router: &Router, req: Request<Body>) -> (StatusCode, axum::http::HeaderMap, Value) {
    let resp = router.clone().oneshot(req).await.expect("infallible");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (
        status,
        headers,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn setup() -> Bench {
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
    let tenant = TenantId::parse("bench").expect("tenant");
    store
        .create_tenant(
            &NewTenant {
                id: tenant.clone(),
                display_name: "bench".into(),
            },
            now,
        )
        .await
        .expect("tenant");
    let (record, credential) =
        portcullis_http::admin::tokens::mint(&tenant, "bench".into(), "bench".into(), now);
    store.insert_admin_credential(&record).await.expect("admin");
    let user = UserId::generate(now, &mut rand::rngs::OsRng);
    store
        .create_user(&UserRecord {
            id: user.clone(),
            tenant: tenant.clone(),
            username: Username::parse("user0").expect("username"),
            email: None,
            email_verified: false,
            status: UserStatus::Active,
            profile: Default::default(),
            password_hash: None,
            password_changed_at: None,
            created_at: now,
            updated_at: now,
            last_login_at: None,
        })
        .await
        .expect("user");
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
    let assembled = serve::assemble(&config, ISSUER.into(), store, keyring, Hooks::new(clock))
        .await
        .expect("assemble");
    let router = assembled.router;
    let req = Request::builder()
        .method(Method::POST)
        .uri("/admin/v1/tenants/bench/clients")
        .header(
            header::AUTHORIZATION,
            format!("Bearer {}", credential.expose()),
        )
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(
            json!({
                "name": "bench app", "client_type": "public", "application_type": "native",
                "first_party": true,
                "grant_types": ["authorization_code", "refresh_token"],
                "redirect_uris": [REDIRECT], "scopes": ["openid", "offline_access"],
            })
            .to_string(),
        ))
        .expect("request");
    let (s, _, client) = send(&router, req).await;
    assert_eq!(s, StatusCode::CREATED, "{client}");
    let session = assembled
        .state
        .sign_in
        .create_session(
            NewSession {
                tenant: tenant.clone(),
                user_id: user.clone(),
                amr: vec!["pwd".into()],
                acr: None,
            },
            None,
            Actor::anonymous(),
            &RequestOrigin::default(),
        )
        .await
        .expect("session");
    // The background tasks keep running for the process's life.
    std::mem::forget(assembled.tasks);
    Bench {
        router,
        client_id: client["client_id"].as_str().expect("id").to_owned(),
        cookie: format!("pcl-session-bench={}", session.secret.expose()),
        _dir: dir,
    }
}

fn form(body: String) -> Request<Body> {
    Request::builder()
        .method(Method::POST)
        .uri("/oauth2/token")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(body))
        .expect("request")
}

/// One code flow: the authorization request with the session cookie, then the code redeemed
/// with the verifier. Returns the token answer.
async fn code_flow(b: &Bench, scope: &str) -> Value {
    let challenge = portcullis_core::auth_code::s256_challenge(VERIFIER);
    let uri = format!(
        "/oauth2/authorize?response_type=code&client_id={}&scope={}&redirect_uri={}\
         &state=bench&code_challenge={challenge}&code_challenge_method=S256",
        b.client_id,
        scope.replace(' ', "%20"),
        "http%3A%2F%2F127.0.0.1%2Fcallback",
    );
    let req = Request::builder()
        .uri(uri)
        .header(header::COOKIE, &b.cookie)
        .body(Body::empty())
        .expect("request");
    let (s, h, _) = send(&b.router, req).await;
    assert!(s.is_redirection(), "authorize answered {s}");
    let location = h[header::LOCATION].to_str().expect("location");
    let code = location
        .split(['?', '&'])
        .find_map(|p| p.strip_prefix("code="))
        .expect("code");
    let (s, _, v) = send(
        &b.router,
        form(format!(
            "grant_type=authorization_code&client_id={}&code={code}\
             &redirect_uri=http%3A%2F%2F127.0.0.1%2Fcallback&code_verifier={VERIFIER}",
            b.client_id
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v
}

async fn refresh(b: &Bench, token: &str) -> String {
    let (s, _, v) = send(
        &b.router,
        form(format!(
            "grant_type=refresh_token&client_id={}&refresh_token={token}",
            b.client_id
        )),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{v}");
    v["refresh_token"].as_str().expect("successor").to_owned()
}

/// The counted part: `n` grants of `mode`.
#[inline(never)]
fn measured(rt: &tokio::runtime::Runtime, b: &Bench, mode: &str, n: u64, mut token: String) {
    for _ in 0..n {
        match mode {
            "refresh" => token = rt.block_on(refresh(b, &token)),
            _ => {
                std::hint::black_box(rt.block_on(code_flow(b, "openid")));
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "refresh".into());
    assert!(
        mode == "refresh" || mode == "code_flow",
        "mode: refresh or code_flow"
    );
    let n: u64 = args.next().map_or(200, |s| s.parse().expect("n"));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let b = rt.block_on(setup());
    // Warm-up outside the count: one flow of each kind, and the family the refreshes rotate.
    let first = rt.block_on(code_flow(&b, "openid offline_access"));
    let token = first["refresh_token"].as_str().expect("token").to_owned();
    let token = rt.block_on(refresh(&b, &token));
    rt.block_on(code_flow(&b, "openid"));
    measured(&rt, &b, &mode, n, token);
    // Let the audit writer flush what the grants recorded, so a whole-process count has it.
    std::thread::sleep(std::time::Duration::from_millis(300));
    println!("{mode}: {n} done");
}
