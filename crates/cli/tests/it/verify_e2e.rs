//! End to end: the verify library embedded in a test program, against the real `portcullis`
//! binary. Keys come from the server's discovery document, revocations from its SSE feed, API
//! keys from its HTTP verify endpoint. A token and an API key are accepted, then refused once
//! revoked through the server, and tokens are refused after their signing key is revoked.

use crate::common;

use std::time::{Duration, Instant};

use common::Server;
use portcullis_core::revocation::RevokedBy;
use portcullis_core::secret::Secret;
use portcullis_core::tenant::TenantId;
use portcullis_verify::{
    ApiKeyConfig, ApiKeySource, FeedConfig, IssuerConfig, KeySource, Policy, Presented, Reason,
    RequestFacts, RevocationSource, Verifier, VerifierConfig,
};
use serde_json::Value;

fn s(v: &Value) -> String {
    v.as_str().expect("string").to_owned()
}

async fn token(server: &Server, client_id: &str, secret: &str) -> String {
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/token", server.url))
        .basic_auth(client_id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials&scope=payments%3Aread")
        .send()
        .await
        .expect("token request");
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.expect("json");
    s(&body["access_token"])
}

/// Polls `check` until it yields the wanted reason, for at most 10 s (a guard against hanging,
/// not a timing claim). Returns how long it took.
async fn refused_within<F, Fut>(want: Reason, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), Reason>>,
{
    let start = Instant::now();
    loop {
        let got = check().await;
        if got == Err(want) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "still {got:?} after 10 s, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_verifies_real_credentials_and_follows_real_revocations() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start(&dir.path().join("data"), &[]);
    let admin = server.token();
    let common::Seeded {
        client_id,
        client_secret: secret,
        api_key,
        api_key_id,
    } = common::seed_payments(&server);

    let mut cfg = VerifierConfig::new(
        IssuerConfig::new(
            server.url.clone(),
            KeySource::Discovery(format!(
                "{}/.well-known/oauth-authorization-server",
                server.url
            )),
        ),
        "payments-api",
        RevocationSource::Feed(FeedConfig::new(server.url.clone(), admin.clone())),
    );
    cfg.api_keys = Some(ApiKeyConfig::new(
        ApiKeySource::Http {
            base_url: server.url.clone(),
            token: Secret::new(admin),
        },
        "live",
    ));
    let verifier = Verifier::new(cfg).expect("verifier");
    let deadline = Instant::now() + Duration::from_secs(10);
    while verifier.revocations().lag().is_none() {
        assert!(Instant::now() < deadline, "the feed never caught up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // A real token: accepted, with its tenant and scopes; refused for another tenant.
    let t1 = token(&server, &client_id, &secret).await;
    let p = verifier
        .verify_access_token(&t1)
        .await
        .expect("valid token");
    assert_eq!(p.client_id.as_deref(), Some(client_id.as_str()));
    assert_eq!(p.tenant, Some(TenantId::parse("acme").expect("t")));
    assert_eq!(p.scopes, vec!["payments:read"]);
    let globex = TenantId::parse("globex").expect("t");
    let bound = Policy::access_token()
        .also_api_keys()
        .all_scopes(["payments:read"])
        .tenant_from_path("tenant");
    let wrong = verifier
        .check(
            Presented::AccessToken(&t1),
            &bound,
            RequestFacts {
                resource_tenant: Some(&globex),
                client_ip: None,
            },
        )
        .await
        .expect_err("other tenant");
    assert_eq!(wrong.reason, Reason::TenantMismatch);

    // A real API key through the HTTP verify endpoint.
    let acme = TenantId::parse("acme").expect("t");
    let kp = verifier
        .verify_api_key(&api_key, Some(&acme), None)
        .await
        .expect("valid key");
    assert_eq!(kp.credential_id, api_key_id);
    assert_eq!(kp.subject, "partner-co");

    // The client revokes its token (RFC 7009); the feed carries it to the verifier, which had
    // the token cached.
    let resp = reqwest::Client::new()
        .post(format!("{}/oauth2/revoke", server.url))
        .basic_auth(&client_id, Some(&secret))
        .header("content-type", "application/x-www-form-urlencoded")
        // A JWT is made of URL-safe characters only.
        .body(format!("token={t1}"))
        .send()
        .await
        .expect("revoke");
    assert_eq!(resp.status(), 200);
    let took = refused_within(Reason::Revoked(RevokedBy::Token), || async {
        verifier
            .verify_access_token(&t1)
            .await
            .map(|_| ())
            .map_err(|d| d.reason)
    })
    .await;
    eprintln!("token revocation reached the verifier in {took:?}");

    // The API key is revoked through the admin CLI; the cached answer is dropped at once.
    server.cli_json(&["api-key", "revoke", "--tenant", "acme", &api_key_id]);
    let took = refused_within(Reason::Revoked(RevokedBy::ApiKey), || async {
        verifier
            .verify_api_key(&api_key, Some(&acme), None)
            .await
            .map(|_| ())
            .map_err(|d| d.reason)
    })
    .await;
    eprintln!("API key revocation reached the verifier in {took:?}");

    // Compromise path: the signing key is revoked; its tokens are refused everywhere.
    let t2 = token(&server, &client_id, &secret).await;
    verifier
        .verify_access_token(&t2)
        .await
        .expect("fresh token");
    let kid = {
        let header = t2.split('.').next().expect("header");
        let bytes =
            base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, header)
                .expect("b64");
        let v: Value = serde_json::from_slice(&bytes).expect("json");
        s(&v["kid"])
    };
    server.cli_json(&["keys", "revoke", &kid]);
    // The key's record drops the cached token and the key itself: the token's kid is now
    // unknown to this verifier (and stays so, whatever a later JWKS says).
    refused_within(Reason::UnknownKid, || async {
        verifier
            .verify_access_token(&t2)
            .await
            .map(|_| ())
            .map_err(|d| d.reason)
    })
    .await;
}
