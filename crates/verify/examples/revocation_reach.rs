//! Measures revocation reach: from the moment a token revocation call to one Portcullis node
//! returns, how long until a verifier following ANOTHER node's feed refuses the token. Used by
//! `bench/run` (scenario `revocation_reach`); prints one JSON line.
//!
//! ```sh
//! cargo run --release -p portcullis-verify --example revocation_reach -- \
//!   --node-a http://127.0.0.1:8081 --node-b http://127.0.0.1:8082 --issuer http://auth.test \
//!   --admin-token "$TOKEN" --client-id cl_... --client-secret pcl_cs_... \
//!   --audience payments-api --count 200
//! ```
//!
//! Each round: get a token from node A, see the verifier accept it (so it is cached), revoke it
//! at node A, then poll the verifier every 200 µs until it refuses.

use std::time::{Duration, Instant};

use portcullis_core::revocation::RevokedBy;
use portcullis_verify::{
    FeedConfig, IssuerConfig, KeySource, Reason, RevocationSource, Verifier, VerifierConfig,
};

fn arg(args: &[String], name: &str) -> Result<String, String> {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .cloned()
        .ok_or_else(|| format!("missing {name}"))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let node_a = arg(&args, "--node-a")?;
    let node_b = arg(&args, "--node-b")?;
    let issuer = arg(&args, "--issuer")?;
    let admin = arg(&args, "--admin-token")?;
    let client_id = arg(&args, "--client-id")?;
    let secret = arg(&args, "--client-secret")?;
    let audience = arg(&args, "--audience")?;
    let count: usize = arg(&args, "--count")?.parse()?;

    let cfg = VerifierConfig::new(
        IssuerConfig::new(issuer, KeySource::JwksUrl(format!("{node_a}/oauth2/jwks"))),
        audience,
        RevocationSource::Feed(FeedConfig::new(node_b, admin)),
    );
    let verifier = Verifier::new(cfg)?;
    let started = Instant::now();
    while verifier.revocations().lag().is_none() {
        if started.elapsed() > Duration::from_secs(30) {
            return Err("the verifier never caught up with node B's feed".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let http = reqwest::Client::new();
    let mut reach_ms = Vec::with_capacity(count);
    for _ in 0..count {
        let resp: serde_json::Value = http
            .post(format!("{node_a}/oauth2/token"))
            .basic_auth(&client_id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let token = resp["access_token"]
            .as_str()
            .ok_or("no access_token")?
            .to_owned();
        verifier
            .verify_access_token(&token)
            .await
            .map_err(|d| format!("fresh token refused: {}", d.reason.as_str()))?;
        http.post(format!("{node_a}/oauth2/revoke"))
            .basic_auth(&client_id, Some(&secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={token}"))
            .send()
            .await?
            .error_for_status()?;
        let revoked_at = Instant::now();
        loop {
            match verifier.verify_access_token(&token).await {
                Err(d) if d.reason == Reason::Revoked(RevokedBy::Token) => break,
                _ if revoked_at.elapsed() > Duration::from_secs(10) => {
                    return Err("a revocation did not reach the verifier within 10 s".into())
                }
                _ => tokio::time::sleep(Duration::from_micros(200)).await,
            }
        }
        reach_ms.push(revoked_at.elapsed().as_secs_f64() * 1000.0);
    }
    reach_ms.sort_by(f64::total_cmp);
    println!(
        "{}",
        serde_json::json!({
            "count": reach_ms.len(),
            "p50_ms": percentile(&reach_ms, 50.0),
            "p99_ms": percentile(&reach_ms, 99.0),
            "max_ms": reach_ms.last().copied().unwrap_or(f64::NAN),
        })
    );
    Ok(())
}
