//! Denial reports: what a standalone gateway sends `serve` about the requests it refused
//! (`POST /v1/gateway/denials`), so that a failed-authentication spike at the edge reaches the
//! same detectors as one at the token service.
//!
//! The wire form ([`WireBatch`], [`WireReport`]) is the one both sides serialise; [`parse_batch`]
//! turns it into typed [`Report`]s at `serve`'s edge, or refuses the whole batch: more than
//! [`MAX_EVENTS`] reports, a denial class or mode outside the gateway's fixed vocabulary, a
//! reason that is not a short code, a status that is not a 4xx, an address that is not one, a
//! tenant id that is not one. A report carries what the embedded gateway's audit event carries
//! (request id, route, method, class, precise reason, status, client address, mode), never a
//! credential, a header value or a query string.
//!
//! Which tenants a gateway may report for is not decided here: that is the admin permission
//! rule (`crate::admin::decide` with [`crate::admin::Permission::ReportDenials`]). This module
//! must never do I/O and never accept a field it cannot bound.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

/// Where `serve` takes reports.
pub const PATH: &str = "/v1/gateway/denials";
/// Most reports in one batch.
pub const MAX_EVENTS: usize = 200;
/// Largest batch body `serve` reads: [`MAX_EVENTS`] reports of the longest allowed fields fit.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;
/// Longest route name, request id and reason code.
const MAX_ROUTE: usize = 128;
const MAX_REQUEST_ID: usize = 128;
const MAX_REASON: usize = 64;
const MAX_METHOD: usize = 16;

/// The denial classes a gateway answers with (the RFC 6750 code, `access_denied` for a missing
/// client certificate, `no_credential` when none was sent).
pub const CLASSES: [&str; 8] = [
    "no_credential",
    "invalid_request",
    "invalid_token",
    "insufficient_scope",
    "rate_limited",
    "invalid_dpop_proof",
    "use_dpop_nonce",
    "access_denied",
];

/// How the gateway saw the request.
pub const MODES: [&str; 4] = ["proxy", "nginx", "traefik", "envoy"];

/// A batch as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WireBatch {
    pub events: Vec<WireReport>,
}

/// One report as sent: a denial, or a count of denials the gateway's audit sampler did not
/// report one by one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum WireReport {
    Denied {
        /// The tenant the refused request was for; absent: the reporting credential's own.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        request_id: Option<String>,
        route: String,
        method: String,
        class: String,
        reason: String,
        status: u16,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        client_ip: Option<String>,
        mode: String,
    },
    Suppressed {
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tenant: Option<String>,
        reason: String,
        dropped: u64,
    },
}

/// A denial, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeniedReport {
    pub tenant: Option<TenantId>,
    pub request_id: Option<String>,
    pub route: String,
    pub method: String,
    /// One of [`CLASSES`].
    pub class: &'static str,
    pub reason: String,
    pub status: u16,
    pub client_ip: Option<IpAddr>,
    /// One of [`MODES`].
    pub mode: &'static str,
}

/// One report, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Report {
    Denied(DeniedReport),
    Suppressed {
        tenant: Option<TenantId>,
        reason: String,
        dropped: u64,
    },
}

impl Report {
    /// The tenant the report names, if any.
    pub fn tenant(&self) -> Option<&TenantId> {
        match self {
            Self::Denied(d) => d.tenant.as_ref(),
            Self::Suppressed { tenant, .. } => tenant.as_ref(),
        }
    }
}

/// Why a batch was refused (the message names the field, never echoes a value).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBatch {
    #[error("a batch holds at most {MAX_EVENTS} events")]
    TooMany,
    #[error("a batch holds at least one event")]
    Empty,
    #[error("event {index}: {field} is not valid")]
    Field { index: usize, field: &'static str },
}

/// Parses a whole batch; any bad report refuses all of it.
pub fn parse_batch(batch: WireBatch) -> Result<Vec<Report>, BadBatch> {
    if batch.events.is_empty() {
        return Err(BadBatch::Empty);
    }
    if batch.events.len() > MAX_EVENTS {
        return Err(BadBatch::TooMany);
    }
    batch
        .events
        .into_iter()
        .enumerate()
        .map(|(index, r)| parse(r).map_err(|field| BadBatch::Field { index, field }))
        .collect()
}

fn parse(r: WireReport) -> Result<Report, &'static str> {
    match r {
        WireReport::Denied {
            tenant,
            request_id,
            route,
            method,
            class,
            reason,
            status,
            client_ip,
            mode,
        } => Ok(Report::Denied(DeniedReport {
            tenant: tenant_of(tenant)?,
            request_id: request_id
                .map(|r| {
                    printable(&r, MAX_REQUEST_ID)
                        .then_some(r)
                        .ok_or("request_id")
                })
                .transpose()?,
            route: printable(&route, MAX_ROUTE)
                .then_some(route)
                .ok_or("route")?,
            method: (!method.is_empty()
                && method.len() <= MAX_METHOD
                && method.bytes().all(|b| b.is_ascii_uppercase()))
            .then_some(method)
            .ok_or("method")?,
            class: CLASSES.into_iter().find(|c| *c == class).ok_or("class")?,
            reason: code(reason).ok_or("reason")?,
            status: (400..500)
                .contains(&status)
                .then_some(status)
                .ok_or("status")?,
            client_ip: client_ip
                .map(|ip| ip.parse::<IpAddr>().map_err(|_| "client_ip"))
                .transpose()?,
            mode: MODES.into_iter().find(|m| *m == mode).ok_or("mode")?,
        })),
        WireReport::Suppressed {
            tenant,
            reason,
            dropped,
        } => Ok(Report::Suppressed {
            tenant: tenant_of(tenant)?,
            reason: code(reason).ok_or("reason")?,
            dropped: (dropped > 0).then_some(dropped).ok_or("dropped")?,
        }),
    }
}

fn tenant_of(t: Option<String>) -> Result<Option<TenantId>, &'static str> {
    t.map(|t| TenantId::parse(&t).map_err(|_| "tenant"))
        .transpose()
}

/// Visible ASCII, 1..=max bytes (route names and request ids: no spaces, no control bytes).
fn printable(s: &str, max: usize) -> bool {
    !s.is_empty() && s.len() <= max && s.bytes().all(|b| b.is_ascii_graphic())
}

/// A reason code: lowercase letters, digits and `_`, 1..=64 bytes.
fn code(s: String) -> Option<String> {
    (!s.is_empty()
        && s.len() <= MAX_REASON
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'))
    .then_some(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn denied() -> WireReport {
        WireReport::Denied {
            tenant: Some("acme".into()),
            request_id: Some("req-1".into()),
            route: "orders".into(),
            method: "GET".into(),
            class: "invalid_token".into(),
            reason: "signature_invalid".into(),
            status: 401,
            client_ip: Some("192.0.2.7".into()),
            mode: "proxy".into(),
        }
    }

    fn with(f: impl FnOnce(&mut WireReport)) -> WireBatch {
        let mut r = denied();
        f(&mut r);
        WireBatch { events: vec![r] }
    }

    #[test]
    fn a_good_batch_parses_into_typed_reports() {
        let json = r#"{"events":[
            {"type":"denied","tenant":"acme","request_id":"req-1","route":"orders","method":"GET",
             "class":"invalid_token","reason":"signature_invalid","status":401,
             "client_ip":"192.0.2.7","mode":"proxy"},
            {"type":"suppressed","reason":"token_expired","dropped":5}]}"#;
        let batch: WireBatch = serde_json::from_str(json).expect("wire");
        let reports = parse_batch(batch.clone()).expect("good");
        assert_eq!(reports.len(), 2);
        let Report::Denied(d) = &reports[0] else {
            panic!("denied first")
        };
        assert_eq!(d.tenant.as_ref().map(TenantId::as_str), Some("acme"));
        assert_eq!(d.class, "invalid_token");
        assert_eq!(d.client_ip, Some("192.0.2.7".parse().expect("ip")));
        assert_eq!(
            reports[1],
            Report::Suppressed {
                tenant: None,
                reason: "token_expired".into(),
                dropped: 5
            }
        );
        // What the gateway serialises reads back the same.
        let again: WireBatch =
            serde_json::from_str(&serde_json::to_string(&batch).expect("json")).expect("wire");
        assert_eq!(again, batch);
    }

    #[test]
    fn unknown_fields_and_types_are_refused_on_the_wire() {
        for bad in [
            r#"{"events":[{"type":"denied","route":"r","method":"GET","class":"invalid_token","reason":"x","status":401,"mode":"proxy","authorization":"Bearer x"}]}"#,
            r#"{"events":[{"type":"allowed","route":"r"}]}"#,
            r#"{"events":[],"extra":1}"#,
            r#"{"events":[{"type":"suppressed","reason":"x","dropped":-1}]}"#,
        ] {
            assert!(serde_json::from_str::<WireBatch>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn every_bad_field_refuses_the_whole_batch_and_names_the_field() {
        let cases: Vec<(WireBatch, &str)> = vec![
            (
                with(|r| {
                    if let WireReport::Denied { tenant, .. } = r {
                        *tenant = Some("Not A Tenant".into());
                    }
                }),
                "tenant",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { route, .. } = r {
                        *route = "a b".into();
                    }
                }),
                "route",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { route, .. } = r {
                        *route = "r".repeat(129);
                    }
                }),
                "route",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { method, .. } = r {
                        *method = "get".into();
                    }
                }),
                "method",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { class, .. } = r {
                        *class = "server_error".into();
                    }
                }),
                "class",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { reason, .. } = r {
                        *reason = "pcl_key_live_secret:x".into();
                    }
                }),
                "reason",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { status, .. } = r {
                        *status = 200;
                    }
                }),
                "status",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { client_ip, .. } = r {
                        *client_ip = Some("localhost".into());
                    }
                }),
                "client_ip",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { mode, .. } = r {
                        *mode = "grpc".into();
                    }
                }),
                "mode",
            ),
            (
                with(|r| {
                    if let WireReport::Denied { request_id, .. } = r {
                        *request_id = Some("x\n".into());
                    }
                }),
                "request_id",
            ),
        ];
        for (batch, field) in cases {
            let mut batch = batch;
            // A good report first: the bad one still refuses the batch.
            batch.events.insert(0, denied());
            assert_eq!(
                parse_batch(batch),
                Err(BadBatch::Field { index: 1, field }),
                "{field}"
            );
        }
        let zero = WireBatch {
            events: vec![WireReport::Suppressed {
                tenant: None,
                reason: "x".into(),
                dropped: 0,
            }],
        };
        assert!(parse_batch(zero).is_err());
    }

    #[test]
    fn batch_size_is_bounded_both_ways() {
        assert_eq!(
            parse_batch(WireBatch { events: vec![] }),
            Err(BadBatch::Empty)
        );
        let full = WireBatch {
            events: vec![denied(); MAX_EVENTS],
        };
        assert_eq!(parse_batch(full).map(|r| r.len()), Ok(MAX_EVENTS));
        let over = WireBatch {
            events: vec![denied(); MAX_EVENTS + 1],
        };
        assert_eq!(parse_batch(over), Err(BadBatch::TooMany));
    }

    #[test]
    fn the_largest_allowed_batch_fits_the_body_limit() {
        let r = WireReport::Denied {
            tenant: Some("t".repeat(40)),
            request_id: Some("q".repeat(MAX_REQUEST_ID)),
            route: "r".repeat(MAX_ROUTE),
            method: "M".repeat(MAX_METHOD),
            class: "insufficient_scope".into(),
            reason: "x".repeat(MAX_REASON),
            status: 401,
            client_ip: Some("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff".into()),
            mode: "traefik".into(),
        };
        let body = serde_json::to_vec(&WireBatch {
            events: vec![r; MAX_EVENTS],
        })
        .expect("json");
        assert!(body.len() < MAX_BATCH_BYTES, "{}", body.len());
    }
}
