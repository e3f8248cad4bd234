//! A gateway embedded in another program (`Gateway::start_with_denial_hook`, as `serve` embeds
//! one): its denials go to the embedder's hook, so a file that also asks for `[audit.report]`
//! is refused at start rather than reporting every denial twice.

use crate::common;

use std::sync::Arc;

use common::*;
use portcullis_gateway::audit::{DenialHook, Denied};
use portcullis_gateway::{Gateway, GatewayConfig};

#[derive(Debug)]
struct Ignore;

impl DenialHook for Ignore {
    fn denied(&self, _: &Denied<'_>) {}
    fn suppressed(&self, _: &'static str, _: u64) {}
}

const FILE: &str = r#"
listen = "127.0.0.1:0"

[audit.report]
url = "http://127.0.0.1:9/v1/gateway/denials"
token = "pcs_test"

[upstreams.app]
url = "http://127.0.0.1:9"

[[routes]]
path = "/*"
upstream = "app"
public = true
"#;

#[tokio::test]
async fn an_embedded_gateway_refuses_its_own_denial_report() {
    let issuer = Issuer::default();
    let config = GatewayConfig::from_toml(FILE).expect("config parses");
    let err = Gateway::start_with_denial_hook(
        config,
        verifier(&issuer, Arc::new(Keys::default())),
        None,
        Some(Arc::new(Ignore)),
    )
    .await
    .expect_err("refused at start");
    assert!(
        err.to_string()
            .contains("already go to its embedder's audit log"),
        "{err}"
    );
    // Without an embedder the same section is what a standalone gateway reports with.
    let config = GatewayConfig::from_toml(FILE).expect("config parses");
    Gateway::start(config, verifier(&issuer, Arc::new(Keys::default())), None)
        .await
        .expect("a standalone gateway starts with [audit.report]");
}
