//! Client authentication at the OAuth endpoints, with throttling of failures per client id and
//! per source address.
//!
//! Every failure (unknown client, wrong or expired secret, disabled client or tenant, wrong
//! method) is the same `invalid_client` answer; the reason goes to the audit log. An unknown
//! client id costs the same digest comparison as a known one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use portcullis_core::audit::Outcome;
use portcullis_core::credential::{Credential, CredentialKind};
use portcullis_core::oauth::AuthMethod;
use portcullis_core::secret::constant_time_eq;
use portcullis_core::tenant::{TenantId, TenantStatus};
use portcullis_core::time::Timestamp;
use portcullis_store::{ClientStatus, OAuthClient};

use super::directory::ClientFacts;
use super::error::OAuthError;
use super::form::{Presented, PresentedMethod, Proof};
use crate::audit::{EventDraft, RequestOrigin};
use crate::state::AppState;

/// How stale `last_used_at` may get before a request refreshes it.
const LAST_USED_GRANULARITY: Duration = Duration::from_secs(30);
/// Longest client id looked up; anything longer cannot exist.
const MAX_CLIENT_ID_LEN: usize = 64;
/// Throttle entries kept before expired windows are swept.
const THROTTLE_SWEEP_AT: usize = 10_000;
/// Hard cap on throttle entries: beyond it (a flood of distinct made-up client ids) per-client
/// counters are dropped and only per-address counters remain, so memory stays bounded.
const THROTTLE_MAX_ENTRIES: usize = 100_000;

/// A client that proved its identity, with the stored facts it was checked against.
#[derive(Debug, Clone)]
pub struct AuthenticatedClient {
    pub facts: Arc<ClientFacts>,
}

impl AuthenticatedClient {
    pub fn client(&self) -> &OAuthClient {
        &self.facts.client
    }
}

/// Fixed-window counters of failed authentications. In memory, per node: an attacker spreading
/// attempts over many nodes gets at most `nodes x limit` tries per window.
#[derive(Debug)]
pub struct Throttle {
    window: Duration,
    max_per_client: u32,
    max_per_ip: u32,
    counters: Mutex<Counters>,
}

#[derive(Debug, Default)]
struct Counters {
    map: HashMap<String, (Timestamp, u32)>,
    /// Size at which the next sweep runs; doubles with what survives a sweep, so sweeping stays
    /// amortised O(1) per failure even when many windows are live.
    sweep_at: usize,
}

impl Throttle {
    pub fn new(window: Duration, max_per_client: u32, max_per_ip: u32) -> Self {
        Self {
            window,
            max_per_client,
            max_per_ip,
            counters: Mutex::new(Counters {
                map: HashMap::new(),
                sweep_at: THROTTLE_SWEEP_AT,
            }),
        }
    }

    fn keys(client_id: &str, ip: Option<&str>) -> [(String, bool); 2] {
        // Ids longer than any real one are cut: they cannot exist, and must not cost memory.
        let mut end = client_id.len().min(MAX_CLIENT_ID_LEN + 1);
        while !client_id.is_char_boundary(end) {
            end -= 1;
        }
        [
            (format!("client:{}", &client_id[..end]), true),
            (format!("ip:{}", ip.unwrap_or("unknown")), false),
        ]
    }

    /// Seconds until the caller may try again, if either counter is at its limit.
    pub fn blocked(&self, client_id: &str, ip: Option<&str>, now: Timestamp) -> Option<u64> {
        let counters = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None;
        for (key, is_client) in Self::keys(client_id, ip) {
            let limit = if is_client {
                self.max_per_client
            } else {
                self.max_per_ip
            };
            if let Some((start, n)) = counters.map.get(&key) {
                let end = start.saturating_add(self.window);
                if *n >= limit && end > now {
                    let secs = (end.as_millis() - now.as_millis() + 999) / 1000;
                    let secs = u64::try_from(secs).unwrap_or(1);
                    wait = Some(wait.map_or(secs, |w: u64| w.max(secs)));
                }
            }
        }
        wait
    }

    pub fn record_failure(&self, client_id: &str, ip: Option<&str>, now: Timestamp) {
        let mut guard = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let counters = &mut *guard;
        if counters.map.len() >= counters.sweep_at {
            let window = self.window;
            counters
                .map
                .retain(|_, (start, _)| start.saturating_add(window) > now);
            if counters.map.len() >= THROTTLE_MAX_ENTRIES / 2 {
                counters.map.retain(|key, _| key.starts_with("ip:"));
            }
            counters.sweep_at =
                (counters.map.len() * 2).clamp(THROTTLE_SWEEP_AT, THROTTLE_MAX_ENTRIES);
        }
        for (key, _) in Self::keys(client_id, ip) {
            let entry = counters.map.entry(key).or_insert((now, 0));
            if entry.0.saturating_add(self.window) <= now {
                *entry = (now, 0);
            }
            entry.1 = entry.1.saturating_add(1);
        }
    }
}

/// Authenticates the client of an OAuth request. `endpoint` names the endpoint for the audit log.
pub async fn authenticate(
    state: &AppState,
    presented: Presented,
    origin: &RequestOrigin,
) -> Result<AuthenticatedClient, OAuthError> {
    let now = state.clock.now();
    let ip = origin.client_ip.as_deref();
    let client_id = presented.client_id;
    if let Some(secs) = state.oauth.throttle.blocked(&client_id, ip, now) {
        audit_failure(
            state,
            None,
            &client_id,
            "throttled",
            origin,
            "oauth.client_auth.throttled",
        );
        return Err(OAuthError::too_many_attempts(secs, "throttled"));
    }
    let fail = |tenant: Option<TenantId>, reason: &str| {
        state.oauth.throttle.record_failure(&client_id, ip, now);
        audit_failure(
            state,
            tenant,
            &client_id,
            reason,
            origin,
            "oauth.client_auth",
        );
        OAuthError::invalid_client(reason.to_owned())
    };

    let client = if client_id.len() <= MAX_CLIENT_ID_LEN {
        state
            .oauth
            .directory
            .client(state.store.as_ref(), &client_id, now)
            .await?
    } else {
        None
    };
    let secret_id = match presented.proof {
        Proof::None => return Err(fail(None, "no_client_secret")),
        Proof::Secret(secret) => {
            // The presented secret's digest is computed whatever happens next, so unknown
            // clients and malformed secrets cost the same as known ones.
            let presented_digest = portcullis_core::credential::digest(secret.expose());
            let format_ok = Credential::parse(secret.expose())
                .map(|c| c.kind() == CredentialKind::ClientSecret)
                .unwrap_or(false);
            let Some(facts) = &client else {
                let _ = constant_time_eq(&presented_digest, &[0u8; 32]);
                return Err(fail(None, "client_unknown"));
            };
            let tenant = || Some(facts.client.tenant.clone());
            if !format_ok {
                return Err(fail(tenant(), "client_secret_malformed"));
            }
            // Every digest is compared, whichever matches, so timing does not tell which.
            let mut matched: Option<(&str, bool)> = None;
            for s in &facts.secrets {
                if constant_time_eq(&s.digest, &presented_digest) {
                    matched = Some((&s.id, s.expires_at.is_none_or(|end| end > now)));
                }
            }
            match matched {
                None => return Err(fail(tenant(), "client_secret_mismatch")),
                Some((_, false)) => return Err(fail(tenant(), "client_secret_expired")),
                Some((id, true)) => Some(id.to_owned()),
            }
        }
        Proof::Assertion(jwt) => {
            let Some(facts) = &client else {
                return Err(fail(None, "client_unknown"));
            };
            if let Err(reason) =
                super::assertion::verify(state, &facts.client, jwt.expose(), now).await?
            {
                return Err(fail(Some(facts.client.tenant.clone()), reason));
            }
            None
        }
    };
    let Some(facts) = client else {
        return Err(fail(None, "client_unknown"));
    };
    let tenant = facts.client.tenant.clone();
    let expected = AuthMethod::parse(&facts.client.auth_method)
        .map_err(|_| OAuthError::internal("stored client has an unknown auth method"))?;
    let used = match presented.method {
        PresentedMethod::Basic => AuthMethod::ClientSecretBasic,
        PresentedMethod::Post => AuthMethod::ClientSecretPost,
        PresentedMethod::Assertion => AuthMethod::PrivateKeyJwt,
    };
    if used != expected {
        return Err(fail(Some(tenant), "client_auth_method_mismatch"));
    }
    if facts.client.status != ClientStatus::Active {
        return Err(fail(Some(tenant), "client_disabled"));
    }
    let tenant_active = state
        .oauth
        .directory
        .tenant_status(state.store.as_ref(), &tenant, now)
        .await?
        == Some(TenantStatus::Active);
    if !tenant_active {
        return Err(fail(Some(tenant), "tenant_disabled"));
    }
    if facts.note_use(now, LAST_USED_GRANULARITY) {
        // Off the request path: last-used is informational and must not slow issuance.
        let store = state.store.clone();
        let id = facts.client.id.clone();
        tokio::spawn(async move {
            if let Err(e) = store.touch_client(&id, secret_id.as_deref(), now).await {
                tracing::warn!(error = %e, "could not record client use");
            }
        });
    }
    Ok(AuthenticatedClient { facts })
}

fn audit_failure(
    state: &AppState,
    tenant: Option<TenantId>,
    client_id: &str,
    reason: &str,
    origin: &RequestOrigin,
    action: &'static str,
) {
    // An id that matched no client is recorded only if it looks like one of ours: the audit
    // log must not become a store for whatever an attacker types.
    let credential_id = (client_id.len() <= MAX_CLIENT_ID_LEN
        && client_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_'))
    .then(|| client_id.to_owned());
    state.audit.record(
        EventDraft {
            tenant: tenant.unwrap_or_else(TenantId::system),
            actor: "anonymous".into(),
            credential_id,
            action,
            outcome: Outcome::Failure,
            reason: Some(reason.to_owned()),
            target: None,
        },
        origin,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn throttle_blocks_after_the_limit_until_the_window_ends() {
        let t = Throttle::new(Duration::from_secs(60), 3, 100);
        let now = Timestamp::from_secs(1_000);
        for _ in 0..3 {
            assert_eq!(t.blocked("cl_a", Some("10.0.0.1"), now), None);
            t.record_failure("cl_a", Some("10.0.0.1"), now);
        }
        assert_eq!(t.blocked("cl_a", Some("10.0.0.2"), now), Some(60));
        assert_eq!(
            t.blocked("cl_a", Some("10.0.0.2"), Timestamp::from_secs(1_059)),
            Some(1)
        );
        assert_eq!(t.blocked("cl_b", Some("10.0.0.2"), now), None);
        assert_eq!(
            t.blocked("cl_a", Some("10.0.0.1"), Timestamp::from_secs(1_060)),
            None
        );
    }

    #[test]
    fn throttle_memory_stays_bounded_under_a_flood_of_made_up_ids() {
        let t = Throttle::new(Duration::from_secs(60), 3, 1_000_000);
        let now = Timestamp::from_secs(1_000);
        t.record_failure(&"x".repeat(10_000), Some("10.0.0.1"), now);
        for i in 0..(THROTTLE_MAX_ENTRIES + 10) {
            t.record_failure(&format!("cl_{i}"), Some("10.0.0.1"), now);
        }
        let counters = t.counters.lock().expect("lock");
        assert!(
            counters.map.len() <= THROTTLE_MAX_ENTRIES,
            "{}",
            counters.map.len()
        );
        assert!(counters.map.keys().all(|k| k.len() <= 80));
        // The per-address counter survives the purge and still blocks.
        assert_eq!(
            counters.map.get("ip:10.0.0.1").map(|c| c.1 > 100_000),
            Some(true)
        );
    }

    #[test]
    fn throttle_counts_per_ip_across_clients() {
        let t = Throttle::new(Duration::from_secs(60), 100, 2);
        let now = Timestamp::from_secs(1_000);
        t.record_failure("cl_a", Some("10.0.0.1"), now);
        t.record_failure("cl_b", Some("10.0.0.1"), now);
        assert_eq!(t.blocked("cl_c", Some("10.0.0.1"), now), Some(60));
        assert_eq!(t.blocked("cl_c", Some("10.0.0.9"), now), None);
    }
}
