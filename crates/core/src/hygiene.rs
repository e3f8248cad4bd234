//! The credential hygiene report: which of a tenant's credentials, keys and rules deserve a
//! look (never used, idle, never expiring, not rotated, used from several networks, holding
//! scopes they never use, outside the lifetime policy, never matched), and an inventory of the
//! strongest credentials and keys by age.
//!
//! [`report`] is a pure function over facts the service loaded ([`HygieneFacts`]) and the time
//! the caller's clock gave. A fact storage does not record is `None` here and produces a note,
//! never a guess: no finding is made from missing data. This module must never do I/O or read
//! the clock, and facts must never carry a secret (ids, names and dates only).

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::time::Duration;

use serde::Serialize;

use crate::api_key::ExpiryPolicy;
use crate::lifetime::{api_key_violation, ExistingMode, LifetimePolicy};
use crate::network::network_of;
use crate::time::Timestamp;

/// What kind of credential a fact describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    ApiKey,
    ClientSecret,
    AdminCredential,
    ServiceCredential,
}

/// One usable credential of the tenant (revoked, expired and rotated-out ones are not loaded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CredentialFacts {
    pub kind: CredentialKind,
    /// The credential's id (an API key id, a client secret id, an admin credential id).
    pub id: String,
    /// What it belongs to, for the reader: the key's name, the client id, the token's label.
    pub label: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub last_used_at: Option<Timestamp>,
    /// Source addresses of its uses inside the window (from the audit log); `None`: uses of
    /// this kind are not recorded with an address.
    pub used_from: Option<Vec<IpAddr>>,
    /// The scopes it was granted; `None` for credentials without scopes.
    pub granted_scopes: Option<Vec<String>>,
    /// The scopes its uses asked for inside the window; `None`: not recorded.
    pub used_scopes: Option<Vec<String>>,
}

/// A key that protects everything else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyKind {
    SigningKey,
    Kek,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFacts {
    pub kind: KeyKind,
    pub id: String,
    /// When it was created; `None`: not recorded (a KEK comes from a file, its age is unknown).
    pub created_at: Option<Timestamp>,
}

/// Something that admits a caller when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    TrustRule,
    RedirectUri,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchFacts {
    pub kind: MatchKind,
    /// The rule id, or `client_id redirect_uri`.
    pub id: String,
    pub created_at: Timestamp,
    /// When it last matched; `None`: never.
    pub last_matched_at: Option<Timestamp>,
}

/// Everything the report is computed from.
#[derive(Debug, Clone, Default)]
pub struct HygieneFacts {
    pub credentials: Vec<CredentialFacts>,
    pub keys: Vec<KeyFacts>,
    pub matches: Vec<MatchFacts>,
    pub api_key_policy: ExpiryPolicy,
    pub lifetime_policy: LifetimePolicy,
    /// Facts the store does not record, each with why (shown in the report as notes).
    pub notes: Vec<String>,
}

/// The thresholds the report uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HygieneSettings {
    /// A credential unused for this long is idle; also the window of used networks and scopes.
    pub unused: Duration,
    /// A credential older than this without rotation is reported.
    pub max_age: Duration,
    /// A signing key or KEK older than this is reported.
    pub key_max_age: Duration,
}

impl Default for HygieneSettings {
    /// 90 days idle, 365 days without rotation, 180 days for keys.
    fn default() -> Self {
        Self {
            unused: Duration::from_secs(90 * 86_400),
            max_age: Duration::from_secs(365 * 86_400),
            key_max_age: Duration::from_secs(180 * 86_400),
        }
    }
}

/// What a finding says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    NeverUsed,
    Unused,
    NoExpiry,
    NotRotated,
    ManyNetworks,
    BroadScopes,
    PolicyViolation,
    OldKey,
    NeverMatched,
}

impl FindingKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeverUsed => "never_used",
            Self::Unused => "unused",
            Self::NoExpiry => "no_expiry",
            Self::NotRotated => "not_rotated",
            Self::ManyNetworks => "many_networks",
            Self::BroadScopes => "broad_scopes",
            Self::PolicyViolation => "policy_violation",
            Self::OldKey => "old_key",
            Self::NeverMatched => "never_matched",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub finding: FindingKind,
    /// `api_key`, `client_secret`, `admin_credential`, `service_credential`, `signing_key`,
    /// `kek`, `trust_rule` or `redirect_uri`.
    pub subject_kind: &'static str,
    pub subject: String,
    pub label: String,
    /// Days since creation (`None`: unknown).
    pub age_days: Option<i64>,
    /// What exactly: the idle days, the networks, the unused scopes, the policy broken.
    pub detail: String,
}

/// One line of the inventory of strong credentials and keys, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InventoryItem {
    pub subject_kind: &'static str,
    pub subject: String,
    pub label: String,
    pub age_days: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HygieneReport {
    pub findings: Vec<Finding>,
    /// Admin and service credentials, signing keys and KEKs by age, oldest first.
    pub inventory: Vec<InventoryItem>,
    pub notes: Vec<String>,
}

fn credential_kind_str(k: CredentialKind) -> &'static str {
    match k {
        CredentialKind::ApiKey => "api_key",
        CredentialKind::ClientSecret => "client_secret",
        CredentialKind::AdminCredential => "admin_credential",
        CredentialKind::ServiceCredential => "service_credential",
    }
}

fn key_kind_str(k: KeyKind) -> &'static str {
    match k {
        KeyKind::SigningKey => "signing_key",
        KeyKind::Kek => "kek",
    }
}

fn match_kind_str(k: MatchKind) -> &'static str {
    match k {
        MatchKind::TrustRule => "trust_rule",
        MatchKind::RedirectUri => "redirect_uri",
    }
}

fn days(from: Timestamp, to: Timestamp) -> i64 {
    to.as_millis()
        .saturating_sub(from.as_millis())
        .div_euclid(86_400_000)
}

/// The report over `facts` at `now`. Findings are sorted by kind, then subject.
pub fn report(facts: &HygieneFacts, settings: &HygieneSettings, now: Timestamp) -> HygieneReport {
    let mut findings = Vec::new();
    let mut inventory = Vec::new();
    let idle_since = now.saturating_sub(settings.unused);
    let policy_applies = facts.lifetime_policy.existing != ExistingMode::Ignore;
    for c in &facts.credentials {
        let subject_kind = credential_kind_str(c.kind);
        let age = days(c.created_at, now);
        let mut add = |finding, detail: String| {
            findings.push(Finding {
                finding,
                subject_kind,
                subject: c.id.clone(),
                label: c.label.clone(),
                age_days: Some(age),
                detail,
            })
        };
        match c.last_used_at {
            None if c.created_at <= idle_since => {
                add(FindingKind::NeverUsed, format!("created {age} days ago"))
            }
            None => {}
            Some(t) if t < idle_since => add(
                FindingKind::Unused,
                format!("last used {} days ago", days(t, now)),
            ),
            Some(_) => {}
        }
        if c.expires_at.is_none() {
            add(FindingKind::NoExpiry, "never expires".into());
        }
        if now.saturating_sub(settings.max_age) > c.created_at {
            add(
                FindingKind::NotRotated,
                format!("not rotated for {age} days"),
            );
        }
        if let Some(ips) = &c.used_from {
            let networks: BTreeSet<String> = ips.iter().copied().map(network_of).collect();
            if networks.len() > 1 {
                add(
                    FindingKind::ManyNetworks,
                    networks.into_iter().collect::<Vec<_>>().join(" "),
                );
            }
        }
        if let (Some(granted), Some(used)) = (&c.granted_scopes, &c.used_scopes) {
            let unused: Vec<&str> = granted
                .iter()
                .filter(|s| !used.contains(s))
                .map(String::as_str)
                .collect();
            if !unused.is_empty() && c.last_used_at.is_some() {
                add(
                    FindingKind::BroadScopes,
                    format!("unused in the window: {}", unused.join(" ")),
                );
            }
        }
        if policy_applies {
            let violation = match c.kind {
                CredentialKind::ApiKey => {
                    api_key_violation(&facts.api_key_policy, c.created_at, c.expires_at, now)
                }
                CredentialKind::ClientSecret => {
                    facts
                        .lifetime_policy
                        .client_secret_violation(c.created_at, c.expires_at, now)
                }
                CredentialKind::AdminCredential | CredentialKind::ServiceCredential => None,
            };
            if let Some(v) = violation {
                add(FindingKind::PolicyViolation, v.as_str().into());
            }
        }
        if matches!(
            c.kind,
            CredentialKind::AdminCredential | CredentialKind::ServiceCredential
        ) {
            inventory.push(InventoryItem {
                subject_kind,
                subject: c.id.clone(),
                label: c.label.clone(),
                age_days: Some(age),
            });
        }
    }
    for k in &facts.keys {
        let age = k.created_at.map(|t| days(t, now));
        if k.created_at
            .is_some_and(|t| now.saturating_sub(settings.key_max_age) > t)
        {
            findings.push(Finding {
                finding: FindingKind::OldKey,
                subject_kind: key_kind_str(k.kind),
                subject: k.id.clone(),
                label: String::new(),
                age_days: age,
                detail: format!("{} days old", age.unwrap_or_default()),
            });
        }
        inventory.push(InventoryItem {
            subject_kind: key_kind_str(k.kind),
            subject: k.id.clone(),
            label: String::new(),
            age_days: age,
        });
    }
    for m in &facts.matches {
        if m.last_matched_at.is_none() && m.created_at <= idle_since {
            findings.push(Finding {
                finding: FindingKind::NeverMatched,
                subject_kind: match_kind_str(m.kind),
                subject: m.id.clone(),
                label: String::new(),
                age_days: Some(days(m.created_at, now)),
                detail: "never matched".into(),
            });
        }
    }
    findings.sort_by(|a, b| {
        (a.finding, a.subject_kind, &a.subject).cmp(&(b.finding, b.subject_kind, &b.subject))
    });
    // Oldest first; unknown ages last.
    inventory.sort_by_key(|i| {
        (
            std::cmp::Reverse(i.age_days.unwrap_or(-1)),
            i.subject.clone(),
        )
    });
    HygieneReport {
        findings,
        inventory,
        notes: facts.notes.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: i64 = 86_400;

    fn now() -> Timestamp {
        Timestamp::from_secs(1_000 * DAY)
    }

    fn ago(days: i64) -> Timestamp {
        Timestamp::from_secs((1_000 - days) * DAY)
    }

    /// Used yesterday from one network with every scope, created 30 days ago, expiring.
    fn healthy(kind: CredentialKind, id: &str) -> CredentialFacts {
        CredentialFacts {
            kind,
            id: id.into(),
            label: "healthy".into(),
            created_at: ago(30),
            expires_at: Some(ago(-30)),
            last_used_at: Some(ago(1)),
            used_from: Some(vec![
                "10.0.0.1".parse().expect("address"),
                "10.0.0.9".parse().expect("address"),
            ]),
            granted_scopes: Some(vec!["a".into(), "b".into()]),
            used_scopes: Some(vec!["b".into(), "a".into()]),
        }
    }

    fn kinds(r: &HygieneReport, subject: &str) -> Vec<FindingKind> {
        r.findings
            .iter()
            .filter(|f| f.subject == subject)
            .map(|f| f.finding)
            .collect()
    }

    fn run(credentials: Vec<CredentialFacts>) -> HygieneReport {
        report(
            &HygieneFacts {
                credentials,
                lifetime_policy: LifetimePolicy {
                    existing: ExistingMode::Report,
                    ..LifetimePolicy::default()
                },
                ..HygieneFacts::default()
            },
            &HygieneSettings::default(),
            now(),
        )
    }

    #[test]
    fn a_healthy_credential_of_every_kind_has_no_finding() {
        let all = [
            CredentialKind::ApiKey,
            CredentialKind::ClientSecret,
            CredentialKind::AdminCredential,
            CredentialKind::ServiceCredential,
        ];
        let r = run(all
            .iter()
            .enumerate()
            .map(|(i, k)| healthy(*k, &format!("c{i}")))
            .collect());
        assert_eq!(r.findings, vec![], "{r:?}");
    }

    #[test]
    fn each_credential_finding_fires() {
        let mut never = healthy(CredentialKind::ApiKey, "never");
        never.last_used_at = None;
        never.created_at = ago(100);
        let mut fresh_never = healthy(CredentialKind::ApiKey, "fresh");
        fresh_never.last_used_at = None;
        let mut idle = healthy(CredentialKind::ClientSecret, "idle");
        idle.last_used_at = Some(ago(91));
        let mut forever = healthy(CredentialKind::AdminCredential, "forever");
        forever.expires_at = None;
        let mut old = healthy(CredentialKind::ServiceCredential, "old");
        old.created_at = ago(366);
        let mut roaming = healthy(CredentialKind::ApiKey, "roaming");
        roaming.used_from = Some(vec![
            "10.0.0.1".parse().expect("address"),
            "192.0.2.7".parse().expect("address"),
        ]);
        let mut broad = healthy(CredentialKind::ApiKey, "broad");
        broad.used_scopes = Some(vec!["a".into()]);
        let mut unknown_scopes = healthy(CredentialKind::ApiKey, "unrecorded");
        unknown_scopes.used_scopes = None;
        unknown_scopes.used_from = None;
        let r = run(vec![
            never,
            fresh_never,
            idle,
            forever,
            old,
            roaming,
            broad,
            unknown_scopes,
        ]);
        assert_eq!(kinds(&r, "never"), vec![FindingKind::NeverUsed]);
        assert_eq!(kinds(&r, "fresh"), vec![], "too new to call never used");
        assert_eq!(kinds(&r, "idle"), vec![FindingKind::Unused]);
        assert_eq!(kinds(&r, "forever"), vec![FindingKind::NoExpiry]);
        assert_eq!(kinds(&r, "old"), vec![FindingKind::NotRotated]);
        assert_eq!(kinds(&r, "roaming"), vec![FindingKind::ManyNetworks]);
        assert_eq!(kinds(&r, "broad"), vec![FindingKind::BroadScopes]);
        assert!(r
            .findings
            .iter()
            .any(|f| f.detail.contains("unused in the window: b")));
        assert_eq!(
            kinds(&r, "unrecorded"),
            vec![],
            "no finding from missing data"
        );
    }

    #[test]
    fn policy_violations_are_reported_only_when_the_mode_asks() {
        let mut long = healthy(CredentialKind::ApiKey, "long");
        long.created_at = ago(10);
        long.expires_at = Some(ago(-400));
        let mut secret = healthy(CredentialKind::ClientSecret, "secret");
        secret.expires_at = None;
        let facts = |existing| HygieneFacts {
            credentials: vec![long.clone(), secret.clone()],
            api_key_policy: ExpiryPolicy::default(),
            lifetime_policy: LifetimePolicy {
                client_secret_expiry_required: true,
                existing,
                ..LifetimePolicy::default()
            },
            ..HygieneFacts::default()
        };
        let r = report(
            &facts(ExistingMode::Report),
            &HygieneSettings::default(),
            now(),
        );
        assert_eq!(kinds(&r, "long"), vec![FindingKind::PolicyViolation]);
        assert_eq!(
            kinds(&r, "secret"),
            vec![FindingKind::NoExpiry, FindingKind::PolicyViolation]
        );
        let r = report(
            &facts(ExistingMode::Ignore),
            &HygieneSettings::default(),
            now(),
        );
        assert_eq!(kinds(&r, "long"), vec![]);
    }

    #[test]
    fn keys_are_inventoried_by_age_and_old_ones_reported() {
        let facts = HygieneFacts {
            credentials: vec![healthy(CredentialKind::AdminCredential, "adm")],
            keys: vec![
                KeyFacts {
                    kind: KeyKind::SigningKey,
                    id: "young".into(),
                    created_at: Some(ago(10)),
                },
                KeyFacts {
                    kind: KeyKind::SigningKey,
                    id: "aged".into(),
                    created_at: Some(ago(200)),
                },
                KeyFacts {
                    kind: KeyKind::Kek,
                    id: "kek-1".into(),
                    created_at: None,
                },
            ],
            ..HygieneFacts::default()
        };
        let r = report(&facts, &HygieneSettings::default(), now());
        assert_eq!(kinds(&r, "aged"), vec![FindingKind::OldKey]);
        assert_eq!(kinds(&r, "young"), vec![]);
        assert_eq!(kinds(&r, "kek-1"), vec![], "an unknown age is no finding");
        let order: Vec<&str> = r.inventory.iter().map(|i| i.subject.as_str()).collect();
        assert_eq!(order, vec!["aged", "adm", "young", "kek-1"]);
    }

    #[test]
    fn rules_and_redirect_uris_never_matched_are_reported() {
        let m = |kind, id: &str, created, last| MatchFacts {
            kind,
            id: id.into(),
            created_at: created,
            last_matched_at: last,
        };
        let facts = HygieneFacts {
            matches: vec![
                m(MatchKind::TrustRule, "dead-rule", ago(100), None),
                m(MatchKind::TrustRule, "new-rule", ago(1), None),
                m(MatchKind::TrustRule, "live-rule", ago(100), Some(ago(2))),
                m(MatchKind::RedirectUri, "cl_x https://a/cb", ago(100), None),
                m(
                    MatchKind::RedirectUri,
                    "cl_x https://b/cb",
                    ago(100),
                    Some(ago(1)),
                ),
            ],
            ..HygieneFacts::default()
        };
        let r = report(&facts, &HygieneSettings::default(), now());
        assert_eq!(kinds(&r, "dead-rule"), vec![FindingKind::NeverMatched]);
        assert_eq!(
            kinds(&r, "cl_x https://a/cb"),
            vec![FindingKind::NeverMatched]
        );
        for quiet in ["new-rule", "live-rule", "cl_x https://b/cb"] {
            assert_eq!(kinds(&r, quiet), vec![], "{quiet}");
        }
    }

    /// `many_networks` counts networks as the new-network detector does (`crate::network`): an
    /// IPv6 /64, so two addresses of one /64 are one network and two /64s of one /48 are two.
    #[test]
    fn many_networks_counts_ipv6_64s_as_the_detectors_do() {
        let mut one = healthy(CredentialKind::ClientSecret, "one-64");
        one.used_from = Some(vec![
            "2001:db8:1:2::5".parse().expect("address"),
            "2001:db8:1:2:ffff::9".parse().expect("address"),
        ]);
        let mut mapped = healthy(CredentialKind::ClientSecret, "one-24");
        mapped.used_from = Some(vec![
            "::ffff:10.0.0.1".parse().expect("address"),
            "10.0.0.2".parse().expect("address"),
        ]);
        let mut two = healthy(CredentialKind::ClientSecret, "two-64s");
        two.used_from = Some(vec![
            "2001:db8:1:2::5".parse().expect("address"),
            "2001:db8:1:3::5".parse().expect("address"),
        ]);
        let r = run(vec![one, mapped, two]);
        let roaming: Vec<_> = r
            .findings
            .iter()
            .filter(|f| f.finding == FindingKind::ManyNetworks)
            .collect();
        assert_eq!(roaming.len(), 1, "{roaming:?}");
        assert_eq!(roaming[0].detail, "2001:db8:1:2::/64 2001:db8:1:3::/64");
    }
}
