//! Leak reports from a secret scanner (`POST /v1/api-keys/leaks`): the reporter's signature
//! over the exact body (HMAC-SHA256 in `X-Portcullis-Signature`, or GitHub's ECDSA P-256 in
//! `Github-Public-Key-Signature`) when a scanner key is configured, then every reported string
//! that is one of our API keys (digest compared in constant time) is revoked at once, audited
//! as a leak, and dropped from the verifier's cache.
//!
//! This module must never tell the reporter which strings matched (the answer is the count
//! received, whatever matched), never record a reported string that is not a key, and never
//! compare a digest or a signature other than in constant time.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use portcullis_core::api_key::parse_presented;
use portcullis_core::audit::{Action, Actor, Outcome, Reason};
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::TenantId;
use portcullis_store::StoreError;
use serde_json::Value;
use sha2::Sha256;

use super::{ApiKeyService, ApiKeys};
use crate::audit::{EventDraft, RequestOrigin};

/// Most tokens accepted in one leak report.
pub const MAX_LEAK_TOKENS: usize = 1_000;
pub const SIGNATURE_HEADER: &str = "x-portcullis-signature";
pub const ECDSA_SIGNATURE_HEADER: &str = "github-public-key-signature";

/// Why a report was refused before any reported string was looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeakReportRefused {
    /// A scanner key is configured and no valid signature by it covers the body (audited).
    BadSignature,
    /// Not a JSON array of reported tokens.
    NotAnArray,
    /// More than [`MAX_LEAK_TOKENS`] reported tokens.
    TooMany,
}

/// Handles one report: checks the reporter's signature, revokes every reported key. Returns how
/// many tokens were received (the whole answer, whatever matched).
pub async fn report(
    svc: &ApiKeyService,
    headers: &HeaderMap,
    body: &[u8],
    origin: &RequestOrigin,
) -> Result<Result<usize, LeakReportRefused>, StoreError> {
    let system_event = |outcome, reason: Reason| EventDraft {
        tenant: TenantId::system(),
        actor: Actor::scanner(),
        credential_id: None,
        action: Action::ApiKeyLeakReport,
        outcome,
        reason: Some(reason),
        target: None,
    };
    if !reporter_verified(&svc.keys, headers, body) {
        svc.audit.record(
            system_event(Outcome::Failure, Reason::new("leak_report_bad_signature")),
            origin,
        );
        return Ok(Err(LeakReportRefused::BadSignature));
    }
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Ok(Err(LeakReportRefused::NotAnArray));
    };
    let Some(tokens) = reported_tokens(&value) else {
        return Ok(Err(LeakReportRefused::NotAnArray));
    };
    if tokens.len() > MAX_LEAK_TOKENS {
        return Ok(Err(LeakReportRefused::TooMany));
    }
    let now = svc.clock.now();
    let mut matched = 0usize;
    for (token, source) in &tokens {
        let Ok(credential) = parse_presented(token) else {
            continue;
        };
        let Some(record) = svc.store.get_api_key(credential.id()).await? else {
            continue;
        };
        if !constant_time_eq(&record.digest, &credential.digest()) {
            continue;
        }
        matched += 1;
        let revoked = svc
            .store
            .revoke_api_key(&record.tenant, &record.id, "leaked", now)
            .await?;
        svc.keys.verifier.invalidate(&record.id);
        svc.audit.record(
            EventDraft {
                tenant: record.tenant.clone(),
                actor: Actor::scanner(),
                credential_id: Some(record.id.clone()),
                action: if revoked {
                    Action::ApiKeyLeakRevoked
                } else {
                    Action::ApiKeyLeakReported
                },
                outcome: Outcome::Success,
                reason: Some(Reason::with_detail("leaked", source_label(source))),
                target: Some(record.id.clone()),
            },
            origin,
        );
        tracing::warn!(key_id = %record.id, tenant = %record.tenant, revoked, "leaked api key reported");
    }
    svc.audit.record(
        system_event(
            Outcome::Success,
            Reason::with_detail("tokens", format_args!("{} matched:{matched}", tokens.len())),
        ),
        origin,
    );
    Ok(Ok(tokens.len()))
}

/// With no scanner key configured, unsigned reports are accepted; with either key, a valid
/// signature by one of them is required.
fn reporter_verified(keys: &ApiKeys, headers: &HeaderMap, body: &[u8]) -> bool {
    if keys.leak_report_key.is_none() && keys.leak_report_ecdsa_key.is_none() {
        return true;
    }
    let hmac_ok = keys
        .leak_report_key
        .as_ref()
        .is_some_and(|k| signature_valid(k.expose(), headers, body));
    let ecdsa_ok = keys
        .leak_report_ecdsa_key
        .as_deref()
        .is_some_and(|k| ecdsa_signature_valid(k, headers, body));
    hmac_ok || ecdsa_ok
}

/// Checks `X-Portcullis-Signature: sha256=<hex>` over the raw body, in constant time.
pub fn signature_valid(key: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    let Some(sig) = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().strip_prefix("sha256="))
        .and_then(|hex_sig| hex::decode(hex_sig).ok())
    else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(key) else {
        return false;
    };
    mac.update(body);
    let expected = mac.finalize().into_bytes();
    constant_time_eq(&expected, &sig)
}

/// Checks a base64 DER ECDSA P-256 SHA-256 signature of the raw body (GitHub's scheme).
fn ecdsa_signature_valid(spki_der: &[u8], headers: &HeaderMap, body: &[u8]) -> bool {
    use base64::Engine;
    let Some(sig) = headers
        .get(ECDSA_SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            base64::engine::general_purpose::STANDARD
                .decode(v.trim())
                .ok()
        })
    else {
        return false;
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(
        &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        spki_der,
    )
    .verify(body, &sig)
    .is_ok()
}

/// Extracts the reported strings: GitHub-style objects (`{"token": ..., "source": ...}`) or
/// bare strings. Anything else in the array is ignored.
fn reported_tokens(v: &Value) -> Option<Vec<(&str, &str)>> {
    let items = v.as_array()?;
    Some(
        items
            .iter()
            .filter_map(|item| match item {
                Value::String(s) => Some((s.as_str(), "")),
                Value::Object(o) => Some((
                    o.get("token")?.as_str()?,
                    o.get("source").and_then(Value::as_str).unwrap_or(""),
                )),
                _ => None,
            })
            .collect(),
    )
}

/// A short, safe label for where a leak was found (goes into the audit reason).
fn source_label(s: &str) -> String {
    let label: String = s
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(40)
        .collect();
    if label.is_empty() {
        "unspecified".into()
    } else {
        label
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_over_the_exact_body() {
        let key = b"0123456789abcdef";
        let body = br#"[{"token":"x"}]"#;
        let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
        mac.update(body);
        let good = hex::encode(mac.finalize().into_bytes());
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            format!("sha256={good}").parse().expect("header"),
        );
        assert!(signature_valid(key, &headers, body));
        assert!(!signature_valid(key, &headers, br#"[{"token":"y"}]"#));
        assert!(!signature_valid(b"another-key-entirely", &headers, body));
        headers.insert(SIGNATURE_HEADER, "sha256=zz".parse().expect("header"));
        assert!(!signature_valid(key, &headers, body));
        assert!(!signature_valid(key, &HeaderMap::new(), body));
    }

    #[test]
    fn source_labels_keep_only_safe_characters() {
        assert_eq!(source_label("github.com/acme repo\n"), "github.comacmerepo");
        assert_eq!(source_label("\u{202e}"), "unspecified");
        assert_eq!(source_label(&"a".repeat(100)).len(), 40);
    }
}
