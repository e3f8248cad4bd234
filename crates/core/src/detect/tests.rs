//! Each rule on synthetic event streams: it fires on the pattern it is for and stays silent on
//! normal traffic; the memory cap holds under a flood of made-up subjects.

use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::audit::{Actor, Reason};
use crate::time::ManualClock;

struct Stream {
    clock: Arc<ManualClock>,
    detector: Detector,
    seq: u64,
}

impl Stream {
    fn new(config: DetectConfig) -> Self {
        let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_700_000_000)));
        Self {
            detector: Detector::new(config, clock.clone()),
            clock,
            seq: 0,
        }
    }

    fn default() -> Self {
        Self::new(DetectConfig::default())
    }

    fn send(&mut self, e: AuditEvent) -> Vec<Finding> {
        self.detector.observe(&e)
    }

    fn event(&mut self, action: Action, outcome: Outcome) -> AuditEvent {
        self.seq += 1;
        AuditEvent {
            id: format!("ev{}", self.seq),
            occurred_at: self.clock.now(),
            tenant: tenant("acme"),
            actor: Actor::anonymous(),
            credential_id: None,
            client_ip: Some("203.0.113.7".into()),
            user_agent: None,
            action,
            outcome,
            reason: None,
            request_id: None,
            target: None,
        }
    }

    fn failed_client_auth(&mut self, client: &str, ip: &str) -> AuditEvent {
        let mut e = self.event(Action::OAuthClientAuth, Outcome::Failure);
        e.credential_id = Some(client.into());
        e.client_ip = Some(ip.into());
        e.reason = Some(Reason::new("client_secret_mismatch"));
        e
    }

    fn advance(&self, secs: u64) {
        self.clock.advance(Duration::from_secs(secs));
    }
}

fn tenant(s: &str) -> TenantId {
    TenantId::parse(s).expect("tenant")
}

fn of_rule(findings: &[Finding], rule: Rule) -> Vec<&Finding> {
    findings.iter().filter(|f| f.rule == rule).collect()
}

#[test]
fn a_failed_auth_spike_on_a_quiet_client_fires_at_the_floor_once_per_window() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for i in 0..30 {
        let e = s.failed_client_auth("cl_quiet", &format!("198.51.100.{i}"));
        fired.extend(s.send(e));
    }
    let client: Vec<_> = fired
        .iter()
        .filter(|f| f.subject == Subject::new(SubjectKind::Client, "cl_quiet"))
        .collect();
    assert_eq!(client.len(), 1, "{fired:?}");
    let f = client[0];
    assert_eq!(f.rule, Rule::FailedAuthSpike);
    assert_eq!(f.count, 20);
    assert_eq!(f.threshold, 20);
    assert_eq!(f.window_secs, 300);
    assert!(!f.shadow);
    assert_eq!(f.samples, vec!["ev1", "ev2", "ev3", "ev4", "ev5"]);
    // The tenant fired too; no single address reached the floor.
    assert!(fired
        .iter()
        .any(|f| f.subject == Subject::new(SubjectKind::Tenant, "acme")));
    assert!(!fired.iter().any(|f| f.subject.kind == SubjectKind::Address));
}

#[test]
fn one_source_address_failing_across_many_clients_fires_for_the_address() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for i in 0..25 {
        let e = s.failed_client_auth(&format!("cl_{i}"), "192.0.2.9");
        fired.extend(s.send(e));
    }
    assert!(fired
        .iter()
        .any(|f| f.subject == Subject::new(SubjectKind::Address, "192.0.2.9")));
    assert!(!fired.iter().any(|f| f.subject.kind == SubjectKind::Client));
}

#[test]
fn a_busy_subject_fires_only_well_above_its_own_baseline() {
    let mut s = Stream::default();
    // Twelve windows of 40 failures each: a noisy but normal client (above the floor). Only
    // the first window, with no baseline yet, fires at the floor.
    let mut fired = Vec::new();
    for window in 0..12 {
        for _ in 0..40 {
            let e = s.failed_client_auth("cl_busy", "198.51.100.1");
            let found = s.send(e);
            if window > 0 {
                fired.extend(found);
            }
        }
        s.advance(300);
    }
    assert!(
        !fired.iter().any(|f| f.subject.kind == SubjectKind::Client),
        "{fired:?}"
    );
    // Its baseline is now 40 a window: 100 failures (over the floor, 2.5x) stay silent...
    let mut fired = Vec::new();
    for _ in 0..100 {
        let e = s.failed_client_auth("cl_busy", "198.51.100.1");
        fired.extend(s.send(e));
    }
    assert!(
        !fired.iter().any(|f| f.subject.kind == SubjectKind::Client),
        "{fired:?}"
    );
    // ...and 200 (5x) fire.
    for _ in 0..100 {
        let e = s.failed_client_auth("cl_busy", "198.51.100.1");
        fired.extend(s.send(e));
    }
    let f = fired
        .iter()
        .find(|f| f.subject.kind == SubjectKind::Client)
        .expect("spike over baseline");
    assert_eq!(f.count, 200);
    assert_eq!(f.threshold, 200);
    assert_eq!(f.baseline, Some(40.0));
}

#[test]
fn throttled_failures_recorded_under_the_installation_count_for_the_clients_tenant() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for _ in 0..5 {
        let e = s.failed_client_auth("cl_t", "192.0.2.1");
        fired.extend(s.send(e));
    }
    for _ in 0..15 {
        let mut e = s.event(Action::OAuthClientAuthThrottled, Outcome::Failure);
        e.tenant = TenantId::system();
        e.credential_id = Some("cl_t".into());
        e.client_ip = Some("192.0.2.1".into());
        e.reason = Some(Reason::new("throttled"));
        fired.extend(s.send(e));
    }
    let f = fired
        .iter()
        .find(|f| f.subject == Subject::new(SubjectKind::Client, "cl_t"))
        .expect("client spike");
    assert_eq!(f.tenant, tenant("acme"));
    assert_eq!(f.count, 20);
}

#[test]
fn normal_traffic_raises_nothing() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for hour in 0..24 {
        for i in 0..50 {
            // Successful issues from the client's usual network, a stray failure now and then.
            let mut e = s.event(Action::OAuthTokenIssue, Outcome::Success);
            e.actor = Actor::client("cl_app");
            e.credential_id = Some("cl_app".into());
            e.client_ip = Some(format!("10.0.0.{}", i % 8));
            fired.extend(s.send(e));
            if i % 25 == 0 {
                let e = s.failed_client_auth("cl_app", "10.0.0.1");
                fired.extend(s.send(e));
            }
            let mut e = s.event(Action::ApiKeyVerify, Outcome::Success);
            e.credential_id = Some("key1".into());
            e.client_ip = Some("10.0.1.5".into());
            fired.extend(s.send(e));
        }
        // A handful of admin changes.
        for _ in 0..3 {
            let mut e = s.event(Action::ApiKeyCreate, Outcome::Success);
            e.actor = Actor::admin("adm1");
            fired.extend(s.send(e));
            let mut e = s.event(Action::ApiKeyRevoke, Outcome::Success);
            e.actor = Actor::admin("adm1");
            fired.extend(s.send(e));
        }
        let _ = hour;
        s.advance(3600 * 8);
    }
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn every_use_of_an_inactive_credential_fires() {
    let mut s = Stream::default();
    let cases = [
        (Action::ApiKeyVerify, "api_key_revoked", SubjectKind::ApiKey),
        (Action::ApiKeyVerify, "api_key_rotated", SubjectKind::ApiKey),
        (
            Action::ApiKeyVerify,
            "api_key_disabled",
            SubjectKind::ApiKey,
        ),
        (Action::ApiKeyVerify, "api_key_expired", SubjectKind::ApiKey),
        (
            Action::OAuthClientAuth,
            "client_disabled",
            SubjectKind::Client,
        ),
        (
            Action::OAuthClientAuth,
            "client_secret_expired",
            SubjectKind::Client,
        ),
        (
            Action::AdminAuthenticate,
            "credential_revoked",
            SubjectKind::AdminCredential,
        ),
    ];
    for (action, reason, kind) in cases {
        for _ in 0..2 {
            let mut e = s.event(action.clone(), Outcome::Failure);
            e.credential_id = Some("cred1".into());
            e.reason = Some(Reason::new(reason));
            let found = s.send(e.clone());
            let hits = of_rule(&found, Rule::InactiveCredentialUse);
            assert_eq!(hits.len(), 1, "{reason}: {found:?}");
            assert_eq!(hits[0].subject, Subject::new(kind, "cred1"));
            assert_eq!(hits[0].detail.as_deref(), Some(reason));
            assert_eq!(hits[0].samples, vec![e.id.clone()]);
        }
    }
    // A wrong secret or an unknown key is a failure, not an inactive credential.
    for reason in ["client_secret_mismatch", "api_key_unknown"] {
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Failure);
        e.credential_id = Some("cred2".into());
        e.reason = Some(Reason::new(reason));
        assert!(of_rule(&s.send(e), Rule::InactiveCredentialUse).is_empty());
    }
}

#[test]
fn mass_revocation_and_mass_creation_by_one_admin_fire() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for _ in 0..20 {
        let mut e = s.event(Action::ApiKeyRevoke, Outcome::Success);
        e.actor = Actor::admin("adm_rogue");
        fired.extend(s.send(e));
    }
    let hits = of_rule(&fired, Rule::BulkAdminAction);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].subject,
        Subject::new(SubjectKind::Admin, "adm_rogue")
    );
    assert_eq!(hits[0].detail.as_deref(), Some("revocations"));
    assert_eq!(hits[0].count, 20);

    let mut fired = Vec::new();
    for _ in 0..50 {
        let mut e = s.event(Action::ApiKeyCreate, Outcome::Success);
        e.actor = Actor::admin("adm_rogue");
        fired.extend(s.send(e));
    }
    let hits = of_rule(&fired, Rule::BulkAdminAction);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].detail.as_deref(), Some("creations"));

    // The same number spread over many windows stays silent.
    let mut fired = Vec::new();
    for _ in 0..40 {
        let mut e = s.event(Action::ApiKeyRevoke, Outcome::Success);
        e.actor = Actor::admin("adm_calm");
        fired.extend(s.send(e));
        s.advance(60);
    }
    assert!(
        of_rule(&fired, Rule::BulkAdminAction).is_empty(),
        "{fired:?}"
    );
}

#[test]
fn a_credential_from_a_new_network_fires_only_after_its_learning_period() {
    let mut s = Stream::default();
    let use_from = |s: &mut Stream, ip: &str| {
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Success);
        e.credential_id = Some("key9".into());
        e.client_ip = Some(ip.into());
        s.send(e)
    };
    // Learning: two networks, no finding.
    assert!(use_from(&mut s, "10.1.1.1").is_empty());
    assert!(use_from(&mut s, "2001:db8:1:2::5").is_empty());
    s.advance(8 * 24 * 3600);
    // Known networks (another host of the same /24 and /64) stay silent.
    assert!(use_from(&mut s, "10.1.1.200").is_empty());
    assert!(use_from(&mut s, "2001:db8:1:2:ffff::1").is_empty());
    assert!(use_from(&mut s, "::ffff:10.1.1.9").is_empty());
    // A new one fires once.
    let found = use_from(&mut s, "198.51.100.23");
    let hits = of_rule(&found, Rule::NewNetwork);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].detail.as_deref(), Some("198.51.100.0/24"));
    assert_eq!(hits[0].subject, Subject::new(SubjectKind::ApiKey, "key9"));
    assert!(use_from(&mut s, "198.51.100.24").is_empty());
    let found = use_from(&mut s, "2001:db8:9::1");
    assert_eq!(
        of_rule(&found, Rule::NewNetwork)[0].detail.as_deref(),
        Some("2001:db8:9::/64")
    );
}

#[test]
fn shadow_mode_marks_findings_and_off_silences_the_rule() {
    let mut config = DetectConfig::default();
    config.rules.inactive_credential_use = Mode::Shadow;
    config.rules.failed_auth_spike = Mode::Off;
    let mut s = Stream::new(config);
    let mut e = s.event(Action::ApiKeyVerify, Outcome::Failure);
    e.credential_id = Some("k".into());
    e.reason = Some(Reason::new("api_key_revoked"));
    let found = s.send(e);
    assert_eq!(found.len(), 1);
    assert!(found[0].shadow);
    let mut fired = Vec::new();
    for _ in 0..100 {
        let e = s.failed_client_auth("cl_x", "192.0.2.1");
        fired.extend(s.send(e));
    }
    assert!(fired.is_empty(), "{fired:?}");
    assert_eq!(s.detector.failed.len(), 0, "an off rule keeps no state");
}

#[test]
fn a_tenant_can_run_a_rule_in_shadow_or_off_while_others_alert() {
    let mut config = DetectConfig::default();
    config.tenant_rules.insert(
        "acme".into(),
        ModeOverrides {
            inactive_credential_use: Some(Mode::Shadow),
            ..ModeOverrides::default()
        },
    );
    config.tenant_rules.insert(
        "quiet".into(),
        ModeOverrides {
            inactive_credential_use: Some(Mode::Off),
            ..ModeOverrides::default()
        },
    );
    let mut s = Stream::new(config);
    let mut found = Vec::new();
    for t in ["acme", "other", "quiet"] {
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Failure);
        e.tenant = tenant(t);
        e.credential_id = Some(format!("k-{t}"));
        e.reason = Some(Reason::new("api_key_revoked"));
        found.extend(s.send(e));
    }
    let seen: Vec<_> = found
        .iter()
        .map(|f| (f.tenant.as_str(), f.shadow))
        .collect();
    assert_eq!(seen, [("acme", true), ("other", false)]);

    // Off by default, on for one tenant: it runs for that tenant only.
    let mut config = DetectConfig::default();
    config.rules.inactive_credential_use = Mode::Off;
    config.tenant_rules.insert(
        "acme".into(),
        ModeOverrides {
            inactive_credential_use: Some(Mode::On),
            ..ModeOverrides::default()
        },
    );
    let mut s = Stream::new(config);
    let mut found = Vec::new();
    for t in ["acme", "other"] {
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Failure);
        e.tenant = tenant(t);
        e.credential_id = Some(format!("k-{t}"));
        e.reason = Some(Reason::new("api_key_revoked"));
        found.extend(s.send(e));
    }
    let seen: Vec<_> = found
        .iter()
        .map(|f| (f.tenant.as_str(), f.shadow))
        .collect();
    assert_eq!(seen, [("acme", false)]);
    let mut bad = DetectConfig::default();
    bad.tenant_rules
        .insert("Not A Tenant".into(), ModeOverrides::default());
    assert!(!bad.problems().is_empty());
}

#[test]
fn per_tenant_thresholds_replace_the_defaults_for_that_tenant_only() {
    let mut config = DetectConfig::default();
    config.tenants.insert(
        "acme".into(),
        Thresholds {
            failed_auth_floor: 3,
            ..Thresholds::default()
        },
    );
    let mut s = Stream::new(config);
    let mut fired = Vec::new();
    for _ in 0..3 {
        let e = s.failed_client_auth("cl_a", "192.0.2.1");
        fired.extend(s.send(e));
    }
    assert!(fired
        .iter()
        .any(|f| f.subject == Subject::new(SubjectKind::Client, "cl_a")));
    let mut fired = Vec::new();
    for _ in 0..3 {
        let mut e = s.failed_client_auth("cl_b", "192.0.2.2");
        e.tenant = tenant("other");
        fired.extend(s.send(e));
    }
    assert!(fired.is_empty(), "{fired:?}");
}

#[test]
fn memory_stays_capped_under_a_flood_of_made_up_subjects() {
    let config = DetectConfig {
        max_subjects: 1_000,
        ..DetectConfig::default()
    };
    let mut s = Stream::new(config);
    // A busy real client first, then a flood; the busy one keeps being seen.
    for i in 0..100_000u32 {
        let ip = std::net::Ipv4Addr::from(i.wrapping_mul(2_654_435_761)).to_string();
        let e = s.failed_client_auth(&format!("cl_fake{i}"), &ip);
        s.send(e);
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Success);
        e.credential_id = Some(format!("key_fake{i}"));
        e.client_ip = Some(ip);
        s.send(e);
        if i % 100 == 0 {
            let e = s.failed_client_auth("cl_real", "10.9.9.9");
            s.send(e);
        }
        assert!(s.detector.subjects() <= 3 * 1_000);
    }
    assert!(s.detector.evicted() > 100_000);
    assert!(s
        .detector
        .failed
        .get(&Subject::new(SubjectKind::Client, "cl_real"))
        .is_some());
}

#[test]
fn config_problems_are_reported() {
    assert!(DetectConfig::default().problems().is_empty());
    let mut c = DetectConfig::default();
    c.thresholds.failed_auth_factor = 0.5;
    c.tenants
        .insert("Not A Tenant!".into(), Thresholds::default());
    c.max_subjects = 0;
    let p = c.problems();
    assert_eq!(p.len(), 3, "{p:?}");
}

#[test]
fn sign_in_pattern_events_become_stuffing_and_spraying_findings() {
    let mut s = Stream::default();
    let mut e = s.event(Action::UserSignInStuffing, Outcome::Denied);
    e.client_ip = Some("203.0.113.9".into());
    e.target = Some("12 accounts".into());
    let found = s.send(e.clone());
    let hits = of_rule(&found, Rule::CredentialStuffing);
    assert_eq!(hits.len(), 1, "{found:?}");
    assert_eq!(
        hits[0].subject,
        Subject::new(SubjectKind::Address, "203.0.113.9")
    );
    assert_eq!(hits[0].count, 12);
    assert_eq!(hits[0].samples, vec![e.id]);
    assert!(of_rule(&found, Rule::PasswordSpraying).is_empty());

    let mut e = s.event(Action::UserSignInSpraying, Outcome::Denied);
    e.target = Some("30 accounts".into());
    let found = s.send(e);
    let hits = of_rule(&found, Rule::PasswordSpraying);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].subject, Subject::new(SubjectKind::Tenant, "acme"));
    assert_eq!(hits[0].count, 30);

    // Ordinary failed sign-ins (one user's typos) are not a pattern.
    for _ in 0..5 {
        let mut e = s.event(Action::UserSignIn, Outcome::Failure);
        e.reason = Some(Reason::new("wrong_password"));
        let found = s.send(e);
        assert!(of_rule(&found, Rule::CredentialStuffing).is_empty());
        assert!(of_rule(&found, Rule::PasswordSpraying).is_empty());
    }
}

impl Stream {
    fn rotate(&mut self, family: &str, ip: &str, reason: &str) -> Vec<Finding> {
        let mut e = self.event(Action::OAuthRefreshRotate, Outcome::Success);
        e.actor = Actor::client("app");
        e.target = Some(family.into());
        e.client_ip = Some(ip.into());
        e.reason = Some(Reason::new(match reason {
            "grace" => "within_grace",
            _ => "rotated",
        }));
        self.send(e)
    }
}

#[test]
fn a_family_refreshing_far_faster_than_its_history_fires_once() {
    let mut s = Stream::default();
    // History: one refresh every five minutes for two hours (2 per 10-minute window).
    for _ in 0..24 {
        assert!(of_rule(&s.rotate("fam1", "10.0.0.1", ""), Rule::UnusualRefresh).is_empty());
        s.advance(300);
    }
    // Then a burst: ten in a minute (floor 10, factor 5 x baseline 2).
    let mut fired = Vec::new();
    for _ in 0..12 {
        fired.extend(s.rotate("fam1", "10.0.0.1", ""));
        s.advance(5);
    }
    let hits = of_rule(&fired, Rule::UnusualRefresh);
    assert_eq!(hits.len(), 1, "{fired:?}");
    assert_eq!(hits[0].detail.as_deref(), Some("rate"));
    assert_eq!(
        hits[0].subject,
        Subject::new(SubjectKind::RefreshFamily, "fam1")
    );
    assert_eq!(hits[0].threshold, 10);
    assert!(hits[0].baseline.is_some_and(|b| b > 1.0));
}

#[test]
fn grace_hand_outs_and_steady_refreshing_stay_silent() {
    let mut s = Stream::default();
    let mut fired = Vec::new();
    for _ in 0..200 {
        fired.extend(s.rotate("fam2", "10.0.0.1", ""));
        // A second tab racing the first: the same rotation handed out again.
        fired.extend(s.rotate("fam2", "10.0.0.1", "grace"));
        s.advance(120);
    }
    assert!(
        of_rule(&fired, Rule::UnusualRefresh).is_empty(),
        "{fired:?}"
    );
}

#[test]
fn a_refresh_from_a_new_network_and_a_reuse_after_rotation_fire() {
    let mut s = Stream::default();
    assert!(s.rotate("fam3", "10.0.0.1", "").is_empty());
    assert!(s.rotate("fam3", "10.0.0.77", "").is_empty());
    let found = s.rotate("fam3", "198.51.100.4", "");
    let hits = of_rule(&found, Rule::UnusualRefresh);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].detail.as_deref(),
        Some("new_network:198.51.100.0/24")
    );

    let mut e = s.event(Action::OAuthRefreshReuse, Outcome::Failure);
    e.target = Some("fam3".into());
    e.reason = Some(Reason::new("reused_after_rotation"));
    let found = s.send(e);
    let hits = of_rule(&found, Rule::UnusualRefresh);
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].detail.as_deref(), Some("reused_after_rotation"));

    // A token of the now revoked family presented again: an inactive credential.
    let mut e = s.event(Action::OAuthRefreshRotate, Outcome::Failure);
    e.target = Some("fam3".into());
    e.reason = Some(Reason::new("family_revoked"));
    let found = s.send(e);
    let hits = of_rule(&found, Rule::InactiveCredentialUse);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].subject,
        Subject::new(SubjectKind::RefreshFamily, "fam3")
    );
}

#[test]
fn a_credential_with_new_client_software_fires_after_learning() {
    let mut s = Stream::default();
    let use_with = |s: &mut Stream, ua: &str| {
        let mut e = s.event(Action::ApiKeyVerify, Outcome::Success);
        e.credential_id = Some("key7".into());
        e.user_agent = Some(ua.into());
        of_rule(&s.send(e), Rule::NewEnvironment).len()
    };
    assert_eq!(use_with(&mut s, "python-requests/2.31"), 0);
    assert_eq!(use_with(&mut s, "curl/8.5.0"), 0);
    s.advance(8 * 24 * 3600);
    // Another version of known software is the same environment.
    assert_eq!(use_with(&mut s, "curl/8.9.1"), 0);
    assert_eq!(use_with(&mut s, "python-requests/2.32"), 0);
    assert_eq!(use_with(&mut s, "Go-http-client/1.1"), 1);
    assert_eq!(use_with(&mut s, "Go-http-client/2.0"), 0);
    assert_eq!(environment_of("  "), None);
    assert_eq!(
        environment_of("Mozilla/5.0 (X11)").as_deref(),
        Some("mozilla")
    );
}

#[test]
fn a_trust_rule_admitting_a_subject_it_never_saw_fires_after_learning() {
    let mut s = Stream::default();
    let exchange = |s: &mut Stream, sub: &str, outcome: Outcome| {
        let mut e = s.event(Action::FederationExchange, outcome);
        e.target = Some("rule_ci".into());
        e.credential_id = Some(sub.into());
        s.send(e)
    };
    assert!(exchange(
        &mut s,
        "repo:acme/app:ref:refs/heads/main",
        Outcome::Success
    )
    .is_empty());
    s.advance(8 * 24 * 3600);
    assert!(exchange(
        &mut s,
        "repo:acme/app:ref:refs/heads/main",
        Outcome::Success
    )
    .is_empty());
    // A refused exchange teaches nothing and fires nothing.
    assert!(exchange(&mut s, "repo:evil/fork:ref:refs/heads/x", Outcome::Failure).is_empty());
    let found = exchange(
        &mut s,
        "repo:acme/app:ref:refs/heads/evil",
        Outcome::Success,
    );
    let hits = of_rule(&found, Rule::NewWorkloadSubject);
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].subject,
        Subject::new(SubjectKind::TrustRule, "rule_ci")
    );
    assert_eq!(
        hits[0].detail.as_deref(),
        Some("repo:acme/app:ref:refs/heads/evil")
    );
}

#[test]
fn every_use_of_the_break_glass_credential_fires() {
    let mut s = Stream::default();
    let auth = |s: &mut Stream, id: &str, outcome: Outcome| {
        let mut e = s.event(Action::AdminAuthenticate, outcome);
        e.tenant = TenantId::system();
        e.credential_id = Some(id.into());
        of_rule(&s.send(e), Rule::BreakGlassUse).len()
    };
    // Before anything marks it, an admin credential is an ordinary one.
    assert_eq!(auth(&mut s, "adm_boot", Outcome::Success), 0);
    let mut boot = s.event(Action::AdminTokenBootstrap, Outcome::Success);
    boot.actor = Actor::system();
    boot.target = Some("adm_boot".into());
    assert!(s.send(boot).is_empty());
    assert_eq!(auth(&mut s, "adm_boot", Outcome::Success), 1);
    assert_eq!(auth(&mut s, "adm_boot", Outcome::Failure), 1);
    assert_eq!(auth(&mut s, "adm_daily", Outcome::Success), 0);
    // Marked at start by the service (the bootstrap happened in an earlier run).
    s.detector.add_break_glass("adm_old_boot");
    assert_eq!(auth(&mut s, "adm_old_boot", Outcome::Success), 1);
}

#[test]
fn every_new_rule_has_a_stored_name_and_a_mode() {
    for r in Rule::ALL {
        assert_eq!(Rule::parse(r.as_str()), Some(r));
        assert_eq!(DetectConfig::default().rules.of(r), Mode::On);
    }
    let mut config = DetectConfig::default();
    config.rules.break_glass_use = Mode::Off;
    let mut s = Stream::new(config);
    s.detector.add_break_glass("adm_boot");
    let mut e = s.event(Action::AdminAuthenticate, Outcome::Success);
    e.credential_id = Some("adm_boot".into());
    assert!(s.send(e).is_empty());
    let th = Thresholds {
        refresh_factor: 0.5,
        refresh_floor: 0,
        ..Thresholds::default()
    };
    let p = th.problems();
    assert!(p.iter().any(|m| m.contains("refresh_factor")), "{p:?}");
    assert!(p.iter().any(|m| m.contains("refresh_floor")), "{p:?}");
}
