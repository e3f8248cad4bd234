//! The third way in of workload identity (issue 17, item 3): a CI job's external token used as
//! the `client_assertion` of a client-credentials request (RFC 7523 section 2.2), for a client
//! registered with `workload_identity_jwt` and a trust rule bound to it, judged by the same
//! rule engine as the token exchange and the JWT-bearer grant. Everything goes through the
//! real router, with the local test issuer of `workload` (discovery and JWKS on 127.0.0.1).
//!
//! Every refusal is the one `invalid_client` answer; the audit log (`oauth.client_auth`) says
//! which check, rule or condition failed.

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use portcullis_jose::sign::{public_jwk_for_jwks, Signer, SigningKeyPair};
use portcullis_jose::Alg;
use serde_json::{json, Value};

use crate::common;
use crate::workload::{independently_verified, trusting, App, TestIssuer, AUD, NOW};

const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
const TOKEN: &str = "/oauth2/token";
const NOT_AUTHENTICATED: &str = "client authentication failed: check the client_id, the client \
     secret or signing key, and that the client is registered for the authentication method used";

/// A `workload_identity_jwt` client of acme for deploy-api (deploy and read).
async fn workload_client(app: &App, name: &str) -> String {
    let (status, body) = app
        .admin_post(
            "/clients",
            json!({"name": name, "auth_method": "workload_identity_jwt",
                   "audiences": ["deploy-api"], "scopes": ["deploy", "read"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.get("client_secret").is_none(), "no secret: {body}");
    assert_eq!(body["auth_method"], "workload_identity_jwt");
    body["client_id"].as_str().expect("client id").to_owned()
}

/// The rule for pushes to main of acme/deploy, bound to `client`: its audience is this server.
fn bound_rule(issuer: &TestIssuer, id: &str, client: &str) -> Value {
    json!({"id": id, "issuer": issuer.url, "audience": common::ISSUER,
           "conditions": [{"claim": "repository_owner_id", "equals": "1001"},
                          {"claim": "repository_id", "equals": "2002"},
                          {"claim": "ref", "equals": "refs/heads/main"},
                          {"claim": "event_name", "equals": "push"}],
           "audiences": ["deploy-api"], "scopes": ["deploy"], "max_lifetime_secs": 600,
           "client_id": client})
}

/// acme trusts the test issuer (with its unbound `deploy-main` rule for the grants), has a
/// workload client `deployer` and the rule `deployer-main` bound to it.
async fn bound(issuer: &TestIssuer) -> (App, String) {
    let app = trusting(issuer).await;
    let client = workload_client(&app, "deployer").await;
    let (status, body) = app
        .admin_post(
            "/federation/rules",
            bound_rule(issuer, "deployer-main", &client),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["client_id"], client.as_str());
    (app, client)
}

/// GitHub's claims of a push to main, for this server as audience, with `changes` (null
/// removes a claim).
fn claims(issuer: &TestIssuer, jti: &str, changes: Value) -> Value {
    let mut c = issuer.github_push_main(jti);
    c["aud"] = json!(common::ISSUER);
    for (k, v) in changes.as_object().expect("object") {
        if v.is_null() {
            c.as_object_mut().expect("object").remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

async fn client_credentials(app: &App, client: &str, assertion: &str) -> (StatusCode, Value) {
    app.token(
        TOKEN,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", client),
            ("client_assertion_type", ASSERTION_TYPE),
            ("client_assertion", assertion),
        ],
    )
    .await
}

fn assert_refused(what: &str, status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}: {body}");
    assert_eq!(body["error"], "invalid_client", "{what}: {body}");
    // The caller never learns which check failed.
    assert_eq!(body["error_description"], NOT_AUTHENTICATED, "{what}");
}

#[tokio::test]
async fn a_job_token_authenticates_its_bound_client_once() {
    let issuer = TestIssuer::start().await;
    let (mut app, client) = bound(&issuer).await;
    let meta = app.get("/.well-known/oauth-authorization-server").await;
    assert!(
        meta["token_endpoint_auth_methods_supported"]
            .as_array()
            .is_some_and(|a| a.iter().any(|m| m == "workload_identity_jwt")),
        "{meta}"
    );
    for elsewhere in [
        "revocation_endpoint_auth_methods_supported",
        "introspection_endpoint_auth_methods_supported",
    ] {
        assert!(
            !meta[elsewhere]
                .as_array()
                .is_some_and(|a| a.iter().any(|m| m == "workload_identity_jwt")),
            "{elsewhere}"
        );
    }

    let token = issuer.mint(&claims(&issuer, "run-1", json!({})));
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Within both the client's registration (deploy, read) and the rule's (deploy).
    assert_eq!(body["scope"], "deploy");
    // Bound to the job token's remaining 300 s, under the rule's 600 s.
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none());
    let access = body["access_token"].as_str().expect("access token");
    let at = independently_verified(&app, access).await;
    assert_eq!(at["sub"], client.as_str());
    assert_eq!(at["client_id"], client.as_str());
    assert_eq!(at["aud"], "deploy-api");
    assert_eq!(
        at["workload"],
        json!({"iss": issuer.url, "sub": "repo:acme/deploy:ref:refs/heads/main",
               "rule": "deployer-main"})
    );

    // A scope beyond the rule, though the client's registration has it.
    let token2 = issuer.mint(&claims(&issuer, "run-2", json!({})));
    let (status, body) = app
        .token(
            TOKEN,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &token2),
                ("scope", "read"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_scope");

    // The same job token again: replayed.
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_refused("replayed", status, &body);

    // A workload client authenticates nowhere but client credentials.
    let token3 = issuer.mint(&claims(&issuer, "run-3", json!({})));
    let (status, body) = app
        .token(
            "/oauth2/revoke",
            &[
                ("token", access),
                ("client_id", &client),
                ("client_assertion_type", ASSERTION_TYPE),
                ("client_assertion", &token3),
            ],
        )
        .await;
    assert_refused("at the revocation endpoint", status, &body);

    let issued = app.events("oauth.token.issue").await;
    assert!(
        issued.iter().any(|e| e.1 == "success"
            && e.2.starts_with("external_identity:")
            && e.2.contains("repo:acme/deploy")
            && e.2.contains("deployer-main")),
        "{issued:?}"
    );
    let auth = app.events("oauth.client_auth").await;
    for reason in ["subject_token_replayed", "client_auth_method_mismatch"] {
        assert!(auth.iter().any(|e| e.2 == reason), "{reason}: {auth:?}");
    }
}

#[tokio::test]
async fn bad_job_tokens_are_invalid_client_and_the_audit_log_says_why() {
    let issuer = TestIssuer::start().await;
    let stranger = TestIssuer::start().await;
    let (mut app, client) = bound(&issuer).await;
    let b64 = |v: &Value| {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "issuer not trusted",
            stranger.mint(&{
                let mut c = claims(&issuer, "b1", json!({}));
                c["iss"] = json!(stranger.url);
                c
            }),
            "untrusted_issuer",
        ),
        (
            "wrong audience",
            issuer.mint(&claims(&issuer, "b2", json!({"aud": AUD}))),
            "subject_token_audience_mismatch",
        ),
        (
            "this server and another audience",
            issuer.mint(&claims(
                &issuer,
                "b3",
                json!({"aud": [common::ISSUER, "https://elsewhere.example"]}),
            )),
            "client_assertion_audience_not_this_server",
        ),
        (
            "expired",
            issuer.mint(&claims(&issuer, "b4", json!({"exp": NOW - 120}))),
            "subject_token_token_expired",
        ),
        (
            "lifetime over the cap",
            issuer.mint(&claims(&issuer, "b5", json!({"exp": NOW + 86_400}))),
            "subject_token_token_lifetime_too_long",
        ),
        (
            "alg none",
            format!(
                "{}.{}.",
                b64(&json!({"alg": "none"})),
                b64(&claims(&issuer, "b6", json!({})))
            ),
            "alg_none",
        ),
        (
            "fork pull request against the main-branch rule",
            issuer.mint(&claims(
                &issuer,
                "b7",
                json!({"sub": "repo:acme/deploy:pull_request", "event_name": "pull_request",
                       "ref": "refs/pull/12/merge", "head_ref": "patch-1", "base_ref": "main",
                       "actor": "mallory"}),
            )),
            "no_rule_matched",
        ),
    ];
    for (what, token, _) in &cases {
        let (status, body) = client_credentials(&app, &client, token).await;
        assert_refused(what, status, &body);
    }
    // The client itself is not refused for its jobs' bad tokens: a good one still works.
    let good = issuer.mint(&claims(&issuer, "b-good", json!({})));
    let (status, body) = client_credentials(&app, &client, &good).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let auth = app.events("oauth.client_auth").await;
    for (what, _, reason) in &cases {
        assert!(
            auth.iter()
                .any(|e| e.1 == "failure" && e.2.starts_with(reason)),
            "{what}: {reason} in {auth:?}"
        );
    }
    // The failed rule and condition are named.
    assert!(
        auth.iter().any(|e| e.2.contains("rule deployer-main")
            && e.2.contains("condition 2 (ref equals): not matched")),
        "{auth:?}"
    );
}

#[tokio::test]
async fn a_job_token_authenticates_only_the_client_its_rule_is_bound_to() {
    let issuer = TestIssuer::start().await;
    let (mut app, _client) = bound(&issuer).await;
    // Another workload client, with no rule of its own: the first client's rule is not its.
    let other = workload_client(&app, "other").await;
    let token = issuer.mint(&claims(&issuer, "o1", json!({})));
    let (status, body) = client_credentials(&app, &other, &token).await;
    assert_refused("rule bound to another client", status, &body);

    // A client with a secret is not authenticated by a job token either.
    let (status, created) = app
        .admin_post(
            "/clients",
            json!({"name": "secretive", "audiences": ["deploy-api"], "scopes": ["deploy"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let secretive = created["client_id"].as_str().expect("id");
    let token = issuer.mint(&claims(&issuer, "o2", json!({})));
    let (status, body) = client_credentials(&app, secretive, &token).await;
    assert_refused("client not bound to any rule", status, &body);

    // Unknown client ids too.
    let token = issuer.mint(&claims(&issuer, "o3", json!({})));
    let (status, body) = client_credentials(&app, "cl_nobody", &token).await;
    assert_refused("unknown client", status, &body);

    // A rule bound to a client serves no workload grant: a token only it admits is refused at
    // the tenant's workload endpoint.
    let token = issuer.mint(&claims(&issuer, "o4", json!({})));
    let (status, body) = app
        .token(
            "/oauth2/tenants/acme/token",
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                ("assertion", &token),
                ("rule", "deployer-main"),
            ],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["error"], "invalid_grant");

    let auth = app.events("oauth.client_auth").await;
    // (An unknown client's refusal is audited under no tenant, not acme's.)
    for reason in ["no_trust_rule_on_issuer", "client_auth_method_mismatch"] {
        assert!(auth.iter().any(|e| e.2 == reason), "{reason}: {auth:?}");
    }
}

/// A `private_key_jwt` client signs its own assertion (`iss` its id) and is judged as before,
/// even with trust rules and workload clients in its tenant; a job token does not authenticate
/// it.
#[tokio::test]
async fn private_key_jwt_clients_are_unaffected() {
    let issuer = TestIssuer::start().await;
    let (mut app, _client) = bound(&issuer).await;
    let (_, pair) = SigningKeyPair::generate(Alg::ES256).expect("key");
    let (jwk, kid) = public_jwk_for_jwks(&pair);
    let (status, created) = app
        .admin_post(
            "/clients",
            json!({"name": "signer", "auth_method": "private_key_jwt",
                   "audiences": ["deploy-api"], "scopes": ["deploy"],
                   "jwks": {"keys": [jwk]}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["client_id"].as_str().expect("id").to_owned();
    let signer = Signer::new(pair, None, Some(&kid));
    let own = |jti: &str| {
        signer
            .sign(
                &json!({"iss": id, "sub": id, "aud": format!("{}/oauth2/token", common::ISSUER),
                          "exp": NOW + 60, "iat": NOW, "jti": jti}),
            )
            .expect("sign")
    };
    let (status, body) = client_credentials(&app, &id, &own("pk-1")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = independently_verified(&app, body["access_token"].as_str().expect("at")).await;
    assert_eq!(at["sub"], id.as_str());
    assert!(at.get("workload").is_none(), "{at}");
    // Its refusals still say what is wrong with the assertion itself.
    let wrong = signer
        .sign(
            &json!({"iss": id, "sub": id, "aud": "https://elsewhere.example",
                      "exp": NOW + 60, "iat": NOW, "jti": "pk-2"}),
        )
        .expect("sign");
    let (status, body) = client_credentials(&app, &id, &wrong).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_ne!(body["error_description"], NOT_AUTHENTICATED, "{body}");
    // A job token is not its credential.
    let token = issuer.mint(&claims(&issuer, "pk-3", json!({})));
    let (status, body) = client_credentials(&app, &id, &token).await;
    assert_refused("job token for a private_key_jwt client", status, &body);
    let auth = app.events("oauth.client_auth").await;
    assert!(
        auth.iter().any(|e| e.2 == "client_auth_method_mismatch"),
        "{auth:?}"
    );
}

/// Binding is checked: only a `workload_identity_jwt` client of the tenant, only with this
/// server as the rule's audience; and a rule can be bound and unbound later.
#[tokio::test]
async fn rules_are_bound_to_workload_clients_only() {
    let issuer = TestIssuer::start().await;
    let (app, client) = bound(&issuer).await;
    let (status, secretive) = app
        .admin_post(
            "/clients",
            json!({"name": "secretive", "audiences": ["deploy-api"], "scopes": ["deploy"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let secretive = secretive["client_id"].as_str().expect("id");
    for (what, rule) in [
        (
            "a client with a secret",
            bound_rule(&issuer, "r1", secretive),
        ),
        ("an unknown client", bound_rule(&issuer, "r2", "cl_nobody")),
        ("another audience than this server", {
            let mut r = bound_rule(&issuer, "r3", &client);
            r["audience"] = json!(AUD);
            r
        }),
    ] {
        let (status, body) = app.admin_post("/federation/rules", rule).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
    }
    // A workload client has client credentials only.
    let (status, body) = app
        .admin_post(
            "/clients",
            json!({"name": "app", "auth_method": "workload_identity_jwt",
                   "grant_types": ["authorization_code"],
                   "redirect_uris": ["https://app.example/cb"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Unbind, then bind again, through the admin API.
    let put = |body: Value| {
        Request::builder()
            .method(Method::PUT)
            .uri("/admin/v1/tenants/acme/federation/rules/deployer-main/client")
            .header(header::AUTHORIZATION, format!("Bearer {}", app.admin))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let (status, body) = app.send(put(json!({"client_id": null}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("client_id").is_none(), "{body}");
    let token = issuer.mint(&claims(&issuer, "u1", json!({})));
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_refused("unbound", status, &body);
    let (status, body) = app.send(put(json!({"client_id": secretive}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Another tenant's workload client, by its id: not a client of this tenant.
    let globex_post = |path: &str, body: Value| {
        Request::builder()
            .method(Method::POST)
            .uri(format!("/admin/v1/tenants/globex{path}"))
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", app.globex_admin),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(body.to_string()))
            .expect("request")
    };
    let (status, body) = app
        .send(globex_post(
            "/resource-servers",
            json!({"audience": "deploy-api", "scopes": ["deploy"]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, theirs) = app
        .send(globex_post(
            "/clients",
            json!({"name": "theirs", "auth_method": "workload_identity_jwt",
                   "audiences": ["deploy-api"], "scopes": ["deploy"]}),
        ))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{theirs}");
    let theirs = theirs["client_id"].as_str().expect("id");
    let (status, body) = app.send(put(json!({"client_id": theirs}))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = app
        .admin_post("/federation/rules", bound_rule(&issuer, "r4", theirs))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        app.get_admin("/federation/rules/deployer-main").await["client_id"],
        Value::Null,
        "still unbound"
    );
    let (status, body) = app.send(put(json!({"client_id": client}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["client_id"], client.as_str());
    // The test clock stands still, yet each bind moves the rule's version forward: a bind made
    // from the read before it finds a version it did not read (the store's compare-and-swap).
    let version = || async {
        let tenant = portcullis_core::tenant::TenantId::parse("acme").expect("tenant");
        app.store
            .get_trust_rule(&tenant, "deployer-main")
            .await
            .expect("read")
            .expect("rule")
            .updated_at
    };
    let before = version().await;
    let (status, body) = app.send(put(json!({"client_id": client}))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(
        version().await > before,
        "the version moved on a standing clock"
    );
    let rule = app.get_admin("/federation/rules/deployer-main").await;
    assert_eq!(rule["client_id"], client.as_str());
    let token = issuer.mint(&claims(&issuer, "u2", json!({})));
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_disabled_workload_client_is_refused_before_its_job_token_is_spent() {
    let issuer = TestIssuer::start().await;
    let (app, client) = bound(&issuer).await;
    let (status, body) = app
        .admin_post(&format!("/clients/{client}/disable"), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = issuer.mint(&claims(&issuer, "disabled-1", json!({})));
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_refused("a disabled client", status, &body);
    // Refused before admission: the job token's id is still free (recording it now succeeds).
    let now = portcullis_core::time::Timestamp::from_secs(NOW);
    let later = portcullis_core::time::Timestamp::from_secs(NOW + 3_600);
    assert!(app
        .store
        .record_subject_jti(&issuer.url, "disabled-1", later, now)
        .await
        .expect("record"));
}

/// Revoking a rule's tokens reaches the tokens of the client it is bound to: they name the
/// client (`sub`), not the rule's workload subject, so the log gets a `client` entry too, and
/// the one revocation rule (core's `RevocationSet`, as every verifier applies it) refuses them.
#[tokio::test]
async fn revoking_a_bound_rules_tokens_revokes_its_clients_tokens() {
    use portcullis_core::revocation::{RevocationKind, RevocationSet, TokenIdentity};
    let issuer = TestIssuer::start().await;
    let (app, client) = bound(&issuer).await;
    let token = issuer.mint(&claims(&issuer, "revoke-1", json!({})));
    let (status, body) = client_credentials(&app, &client, &token).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let at = independently_verified(&app, body["access_token"].as_str().expect("token")).await;
    let tenant = portcullis_core::tenant::TenantId::parse("acme").expect("tenant");
    let revoked = |log: &[portcullis_store::RevocationEntry]| {
        let mut set = RevocationSet::new();
        for r in log {
            set.apply(&r.clone().into_record());
        }
        set.token_revoked(&TokenIdentity {
            tenant: &tenant,
            jti: at["jti"].as_str().expect("jti"),
            client_id: at["client_id"].as_str(),
            subject: at["sub"].as_str().expect("sub"),
            kid: "",
            family: None,
            sid: None,
            exchanged_from: &[],
            issued_at: portcullis_core::time::Timestamp::from_secs(
                at["iat"].as_i64().expect("iat"),
            ),
        })
        .is_some()
    };
    let before = app.store.revocations_after(0, 100).await.expect("log");
    assert!(!revoked(&before), "live before");

    let (status, v) = app
        .admin_post("/federation/rules/deployer-main/revoke-tokens", json!({}))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert_eq!(v["rules"], json!(["deployer-main"]));
    assert_eq!(v["clients"], json!([client]));
    let log = app.store.revocations_after(0, 100).await.expect("log");
    assert!(
        log.iter()
            .any(|e| e.kind == RevocationKind::Client && e.subject == client),
        "{log:?}"
    );
    assert!(revoked(&log), "refused after");
}
