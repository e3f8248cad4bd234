//! WebSocket pass-through: an HTTP/1.1 `Upgrade: websocket` request on a route with
//! `websocket = true` goes to the upstream with its `Upgrade` and `Connection: upgrade`; when the
//! upstream answers 101 Switching Protocols, the client gets that 101 and the two upgraded
//! connections are spliced together, bytes copied both ways, in a task of their own until
//! either side closes.
//!
//! Only `websocket` is passed through: a tunnel carries bytes the gateway never sees, and a
//! protocol that speaks HTTP again inside it (`h2c`, for one) would let a client reach any path
//! of the upstream past the route policy. The credential is checked once, before the upgrade
//! request leaves the gateway; nothing later in the tunnel is checked again.
//!
//! This module must never start a tunnel for a request that was not authorized or whose route
//! did not opt in (the proxy calls [`take`] only after [`crate::decision::decide`] allowed the request, and
//! only for such routes), never answer 101 unless the upstream did, and never let an upgraded
//! upstream connection back into the pool (see [`crate::pool`]).

use axum::body::Body;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::{Method, Response, StatusCode, Version};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;

use crate::headers::strip_hop_by_hop;
use crate::pool::UpstreamBody;

/// The only protocol passed through.
const WEBSOCKET: &str = "websocket";

/// A client's pending upgrade, taken from its request before the request goes upstream.
#[derive(Debug)]
pub struct ClientUpgrade {
    on: OnUpgrade,
}

/// The client's upgrade, if `parts` asks for a WebSocket in the RFC 6455 way: an HTTP/1.1 `GET`
/// with `Connection: upgrade` and `Upgrade: websocket`. Anything else gets `None` and goes on as
/// a plain request (its `Upgrade` is stripped with the other hop-by-hop headers).
pub fn take(parts: &mut Parts) -> Option<ClientUpgrade> {
    let asks = parts.version == Version::HTTP_11
        && parts.method == Method::GET
        && connection_has_upgrade(&parts.headers)
        && is_websocket(&parts.headers);
    if !asks {
        return None;
    }
    // Present only on connections hyper serves with upgrades (HTTP/1.1, see server.rs).
    let on = parts.extensions.remove::<OnUpgrade>()?;
    Some(ClientUpgrade { on })
}

/// Puts back, on the stripped upstream request, the two hop-by-hop headers an upgrade needs.
pub fn ask_upstream(headers: &mut http::HeaderMap) {
    headers.insert(header::UPGRADE, HeaderValue::from_static(WEBSOCKET));
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
}

fn connection_has_upgrade(h: &http::HeaderMap) -> bool {
    h.get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Exactly one `Upgrade` header, naming only `websocket`.
fn is_websocket(h: &http::HeaderMap) -> bool {
    let mut values = h.get_all(header::UPGRADE).iter();
    match (values.next(), values.next()) {
        (Some(v), None) => v
            .to_str()
            .is_ok_and(|v| v.trim().eq_ignore_ascii_case(WEBSOCKET)),
        _ => false,
    }
}

/// The client's answer to the upstream's 101: the 101 with the upstream's end-to-end headers
/// (`Sec-WebSocket-Accept`, ...) plus `Upgrade: websocket` and `Connection: upgrade`, while a
/// spawned task splices the two connections. `None` when the upstream switched to anything but
/// a WebSocket (the caller answers 502).
pub fn tunnel(
    client: ClientUpgrade,
    mut resp: Response<UpstreamBody>,
    request_id: String,
) -> Option<Response<Body>> {
    if resp.status() != StatusCode::SWITCHING_PROTOCOLS || !is_websocket(resp.headers()) {
        return None;
    }
    let upstream = hyper::upgrade::on(&mut resp);
    let (mut parts, _) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    ask_upstream(&mut parts.headers);
    tokio::spawn(splice(client.on, upstream, request_id));
    Some(Response::from_parts(parts, Body::empty()))
}

/// Copies bytes both ways until either side closes or fails.
async fn splice(client: OnUpgrade, upstream: OnUpgrade, request_id: String) {
    let (client, upstream) = match tokio::try_join!(client, upstream) {
        Ok(both) => both,
        Err(e) => {
            tracing::debug!(request_id, error = %e, "upgrade did not complete");
            return;
        }
    };
    let mut client = TokioIo::new(client);
    let mut upstream = TokioIo::new(upstream);
    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
        Ok((up, down)) => tracing::debug!(request_id, up, down, "tunnel closed"),
        Err(e) => tracing::debug!(request_id, error = %e, "tunnel ended with an error"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> Parts {
        let mut b = http::Request::builder().method(method).uri("/ws");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        let (mut p, ()) = b.body(()).expect("request").into_parts();
        p.version = Version::HTTP_11;
        p
    }

    #[test]
    fn only_websocket_get_upgrades_are_recognised() {
        let ws = [
            ("connection", "keep-alive, Upgrade"),
            ("upgrade", "WebSocket"),
        ];
        assert!(connection_has_upgrade(&parts("GET", &ws).headers));
        assert!(is_websocket(&parts("GET", &ws).headers));
        let h2c = [("connection", "upgrade"), ("upgrade", "h2c")];
        assert!(!is_websocket(&parts("GET", &h2c).headers));
        let two = [("upgrade", "websocket"), ("upgrade", "h2c")];
        assert!(!is_websocket(&parts("GET", &two).headers));
        let list = [("upgrade", "websocket, h2c")];
        assert!(!is_websocket(&parts("GET", &list).headers));
        assert!(!connection_has_upgrade(
            &parts("GET", &[("connection", "close")]).headers
        ));
        // Without hyper's pending upgrade (not an upgradeable connection) nothing is taken.
        assert!(take(&mut parts("GET", &ws)).is_none());
    }
}
