//! Detectors: pure rules over the audit events that say when something looks wrong, as
//! [`Finding`]s. The service runs one [`Detector`] on the audit bus and turns findings into
//! alerts; this module decides, it never stores, sends or waits.
//!
//! The rules ([`Rule`]):
//! - **failed-auth spike**: failed authentications per tenant, client, API key, admin
//!   credential and source address, counted in windows; a window fires when its count reaches
//!   both the absolute floor and `factor` times that subject's own mean of recent windows, so a
//!   quiet subject fires at the floor and a busy one only well above its normal failure rate;
//! - **inactive credential use**: every presentation of a revoked, disabled, expired or
//!   rotated-out credential (someone still holds it);
//! - **bulk admin action**: one admin revoking or disabling, or creating, many credentials in
//!   one window;
//! - **new network**: a credential used successfully from a /24 (IPv4) or /64 (IPv6) it was never
//!   seen on (`crate::network`), once its learning period since first use has passed;
//! - **new environment**: the same for the client software a credential is used with (the
//!   user agent's product token, `curl` in `curl/8.5`);
//! - **credential stuffing** and **password spraying**: the sign-in pages' own pattern events
//!   (`user.sign_in.credential_stuffing`, `user.sign_in.password_spraying`) turned into alerts,
//!   per source address and per tenant;
//! - **unusual refresh**: a refresh-token family rotating far faster than its own history
//!   (floor and factor, like the spike rule), refreshed from a network it was never refreshed
//!   from, or a rotated token presented again (`oauth.refresh.reuse`);
//! - **new workload subject**: a workload-identity trust rule admitting a subject it has never
//!   admitted, once its learning period has passed;
//! - **break-glass use**: every presentation of the first-start bootstrap admin credential
//!   (learned from `admin_token.bootstrap` events and [`Detector::add_break_glass`]).
//!
//! Every rule has a [`Mode`]: on, shadow (findings are marked `shadow`, to be recorded but not
//! alerted) or off, by default and per tenant. Thresholds come per tenant with defaults
//! ([`DetectConfig`]).
//!
//! Memory is bounded whatever arrives: per-subject state lives in [`bounded::BoundedMap`]s of
//! `max_subjects` entries that forget the least recently seen subject. A flood of made-up
//! subjects evicts quiet state (and can restart a quiet credential's learning period), never
//! grows the process. Time comes from the [`Clock`]; this module must never do I/O.

pub mod bounded;
pub mod config;
pub mod limit;
pub mod window;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::audit::{Action, ActorKind, AuditEvent, Outcome};
use crate::network::network_of;
use crate::tenant::TenantId;
use crate::time::{Clock, Timestamp};

use bounded::BoundedMap;
pub use config::{DetectConfig, Mode, ModeOverrides, Modes, Rule, Thresholds};
use window::WindowedCounter;

/// What a finding is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectKind {
    Tenant,
    Client,
    ApiKey,
    AdminCredential,
    Address,
    Admin,
    RefreshFamily,
    TrustRule,
}

impl SubjectKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Client => "client",
            Self::ApiKey => "api_key",
            Self::AdminCredential => "admin_credential",
            Self::Address => "address",
            Self::Admin => "admin",
            Self::RefreshFamily => "refresh_family",
            Self::TrustRule => "trust_rule",
        }
    }
}

/// A subject: its kind and its id (a client id, key id, address, admin credential id).
/// Written `kind:id`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Subject {
    pub kind: SubjectKind,
    pub id: String,
}

impl Subject {
    pub fn new(kind: SubjectKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.kind.as_str(), self.id)
    }
}

/// What a rule saw: enough evidence for an operator to judge it without the raw log.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    /// The rule is in shadow mode: record, do not alert.
    pub shadow: bool,
    pub tenant: TenantId,
    pub subject: Subject,
    pub at: Timestamp,
    /// The window counted, and its length (0 for a rule that fires per event).
    pub window_start: Timestamp,
    pub window_secs: u64,
    /// Events counted in the window (1 for a per-event rule).
    pub count: u64,
    /// What the count had to reach.
    pub threshold: u64,
    /// The subject's mean count per window before this one, for the spike rule.
    pub baseline: Option<f64>,
    /// The reason code or network that fired the rule.
    pub detail: Option<String>,
    /// Ids of events counted (the first few of the window).
    pub samples: Vec<String>,
}

/// Which kind of bulk admin action.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Bulk {
    Revocations,
    Creations,
}

#[derive(Debug)]
struct Failures {
    counter: WindowedCounter,
    /// The tenant findings are reported in: the subject's last non-system tenant.
    tenant: TenantId,
}

/// Values (networks, client software, workload subjects) seen for one subject since it was
/// first seen.
#[derive(Debug)]
struct Seen {
    first_seen: Timestamp,
    /// Values seen, oldest first, at most `max_networks_per_credential`.
    seen: Vec<String>,
}

impl Seen {
    fn new(now: Timestamp) -> Self {
        Self {
            first_seen: now,
            seen: Vec::new(),
        }
    }

    /// Records `value`; returns whether it is new (not seen before).
    fn learn(&mut self, value: &str, max: usize) -> bool {
        if self.seen.iter().any(|v| v == value) {
            return false;
        }
        if self.seen.len() >= max.max(1) {
            self.seen.remove(0);
        }
        self.seen.push(value.to_owned());
        true
    }

    fn learned(&self, now: Timestamp, learning_ms: i64) -> bool {
        now.as_millis().saturating_sub(self.first_seen.as_millis()) >= learning_ms
    }
}

#[derive(Debug)]
struct Family {
    rotations: WindowedCounter,
    networks: Seen,
}

/// The detectors' state over one stream of events.
#[derive(Debug)]
pub struct Detector {
    config: DetectConfig,
    clock: Arc<dyn Clock>,
    /// Keyed by subject alone: client, key and admin credential ids are unique across tenants,
    /// and an address is one attacker whichever tenant it tries.
    failed: BoundedMap<Subject, Failures>,
    bulk: BoundedMap<(TenantId, Subject, Bulk), WindowedCounter>,
    networks: BoundedMap<(TenantId, Subject), Seen>,
    environments: BoundedMap<(TenantId, Subject), Seen>,
    families: BoundedMap<(TenantId, String), Family>,
    workloads: BoundedMap<(TenantId, String), Seen>,
    /// Ids of break-glass admin credentials (bounded by the cap like the rest).
    break_glass: BoundedMap<String, ()>,
}

/// Reason codes that mean a credential which should be dead was presented.
const INACTIVE_REASONS: [&str; 7] = [
    "api_key_revoked",
    "api_key_rotated",
    "api_key_disabled",
    "api_key_expired",
    "client_disabled",
    "client_secret_expired",
    "credential_revoked",
];

impl Detector {
    pub fn new(config: DetectConfig, clock: Arc<dyn Clock>) -> Self {
        let cap = config.max_subjects;
        Self {
            config,
            clock,
            failed: BoundedMap::new(cap),
            bulk: BoundedMap::new(cap),
            networks: BoundedMap::new(cap),
            environments: BoundedMap::new(cap),
            families: BoundedMap::new(cap),
            workloads: BoundedMap::new(cap),
            break_glass: BoundedMap::new(cap),
        }
    }

    /// Marks an admin credential as the break-glass one: every use of it fires
    /// [`Rule::BreakGlassUse`]. The service calls it at start for the stored bootstrap
    /// credentials; a bootstrap during the run is learned from its audit event.
    pub fn add_break_glass(&mut self, credential_id: &str) {
        self.break_glass.touch(&credential_id.to_owned(), || ());
    }

    pub fn config(&self) -> &DetectConfig {
        &self.config
    }

    /// Subjects held now, over every rule (bounded by seven times `max_subjects`).
    pub fn subjects(&self) -> usize {
        self.failed.len()
            + self.bulk.len()
            + self.networks.len()
            + self.environments.len()
            + self.families.len()
            + self.workloads.len()
            + self.break_glass.len()
    }

    /// Subjects forgotten because of the cap, so far.
    pub fn evicted(&self) -> u64 {
        self.failed.evicted()
            + self.bulk.evicted()
            + self.networks.evicted()
            + self.environments.evicted()
            + self.families.evicted()
            + self.workloads.evicted()
            + self.break_glass.evicted()
    }

    /// Runs every rule on one event and returns what fired (shadow findings included).
    pub fn observe(&mut self, event: &AuditEvent) -> Vec<Finding> {
        let now = self.clock.now();
        let mut out = Vec::new();
        if !self.config.enabled {
            return out;
        }
        if let Some(mode) = self.active(Rule::FailedAuthSpike) {
            self.failed_auth(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::InactiveCredentialUse) {
            inactive_use(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::BulkAdminAction) {
            self.bulk_admin(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::NewNetwork) {
            self.new_network(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::NewEnvironment) {
            self.new_environment(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::CredentialStuffing) {
            sign_in_pattern(event, now, mode, Rule::CredentialStuffing, &mut out);
        }
        if let Some(mode) = self.active(Rule::PasswordSpraying) {
            sign_in_pattern(event, now, mode, Rule::PasswordSpraying, &mut out);
        }
        if let Some(mode) = self.active(Rule::UnusualRefresh) {
            self.unusual_refresh(event, now, mode, &mut out);
        }
        if let Some(mode) = self.active(Rule::NewWorkloadSubject) {
            self.new_workload_subject(event, now, mode, &mut out);
        }
        // Learned whatever the rule's mode, so turning it on later knows the credential.
        if event.action == Action::AdminTokenBootstrap && event.outcome == Outcome::Success {
            if let Some(id) = &event.target {
                self.add_break_glass(id);
            }
        }
        if let Some(mode) = self.active(Rule::BreakGlassUse) {
            self.break_glass_use(event, now, mode, &mut out);
        }
        // The mode that counts is the one of the tenant the finding is reported in.
        out.retain_mut(|f| match self.config.mode_for(f.rule, &f.tenant) {
            Mode::Off => false,
            m => {
                f.shadow = m == Mode::Shadow;
                true
            }
        });
        out
    }

    /// `None` for a rule off for every tenant (it keeps no state); else its default mode (a
    /// tenant's own mode is applied to each finding in [`Self::observe`]).
    fn active(&self, rule: Rule) -> Option<Mode> {
        self.config
            .runs_anywhere(rule)
            .then(|| self.config.rules.of(rule))
    }

    fn failed_auth(&mut self, e: &AuditEvent, now: Timestamp, mode: Mode, out: &mut Vec<Finding>) {
        if !is_failed_auth(e) {
            return;
        }
        let th = self.config.thresholds_for(&e.tenant).clone();
        let window_ms = secs_ms(th.failed_auth_window_secs);
        let mut subjects = vec![Subject::new(SubjectKind::Tenant, e.tenant.as_str())];
        if let (Some(kind), Some(id)) = (credential_kind(&e.action), &e.credential_id) {
            subjects.push(Subject::new(kind, id.clone()));
        }
        if let Some(ip) = address(e) {
            subjects.push(Subject::new(SubjectKind::Address, ip.to_string()));
        }
        for subject in subjects {
            let state = self.failed.touch(&subject, || Failures {
                counter: WindowedCounter::new(window_ms, th.failed_auth_baseline_windows, now),
                tenant: e.tenant.clone(),
            });
            // A refusal before the credential was looked up (the failure throttle) is recorded
            // under the installation's tenant; the subject keeps the tenant it was last seen in.
            if !e.tenant.is_system() {
                state.tenant = e.tenant.clone();
            }
            let counter = &mut state.counter;
            if let Some(spike) =
                counter.spike(now, &e.id, th.failed_auth_floor, th.failed_auth_factor)
            {
                out.push(Finding {
                    rule: Rule::FailedAuthSpike,
                    shadow: mode == Mode::Shadow,
                    tenant: state.tenant.clone(),
                    subject,
                    at: now,
                    window_start: counter.window_start(),
                    window_secs: th.failed_auth_window_secs,
                    count: spike.count,
                    threshold: spike.threshold,
                    baseline: Some(spike.baseline),
                    detail: None,
                    samples: counter.samples.clone(),
                });
            }
        }
    }

    fn bulk_admin(&mut self, e: &AuditEvent, now: Timestamp, mode: Mode, out: &mut Vec<Finding>) {
        if e.outcome != Outcome::Success {
            return;
        }
        let kind = match e.action {
            Action::ApiKeyRevoke
            | Action::ApiKeyDisable
            | Action::AdminTokenRevoke
            | Action::OAuthClientDisable => Bulk::Revocations,
            Action::ApiKeyCreate | Action::AdminTokenCreate | Action::OAuthClientCreate => {
                Bulk::Creations
            }
            _ => return,
        };
        let ActorKind::Admin(admin) = e.actor.kind() else {
            return;
        };
        let th = self.config.thresholds_for(&e.tenant).clone();
        let need = match kind {
            Bulk::Revocations => th.bulk_revocations,
            Bulk::Creations => th.bulk_creations,
        };
        let key = (
            e.tenant.clone(),
            Subject::new(SubjectKind::Admin, admin),
            kind,
        );
        let counter = self.bulk.touch(&key, || {
            WindowedCounter::new(secs_ms(th.bulk_window_secs), 0, now)
        });
        let count = counter.add(now, &e.id);
        if count >= need && !counter.fired {
            counter.fired = true;
            out.push(Finding {
                rule: Rule::BulkAdminAction,
                shadow: mode == Mode::Shadow,
                tenant: key.0.clone(),
                subject: key.1.clone(),
                at: now,
                window_start: counter.window_start(),
                window_secs: th.bulk_window_secs,
                count,
                threshold: need,
                baseline: None,
                detail: Some(
                    match kind {
                        Bulk::Revocations => "revocations",
                        Bulk::Creations => "creations",
                    }
                    .to_owned(),
                ),
                samples: counter.samples.clone(),
            });
        }
    }

    fn new_network(&mut self, e: &AuditEvent, now: Timestamp, mode: Mode, out: &mut Vec<Finding>) {
        if e.outcome != Outcome::Success {
            return;
        }
        let kind = match e.action {
            Action::ApiKeyVerify => SubjectKind::ApiKey,
            Action::OAuthTokenIssue => SubjectKind::Client,
            Action::AdminAuthenticate => SubjectKind::AdminCredential,
            _ => return,
        };
        let id = match (&e.credential_id, e.actor.kind()) {
            (Some(id), _) => id.clone(),
            (None, ActorKind::Client(id)) if kind == SubjectKind::Client => id.to_owned(),
            _ => return,
        };
        let Some(network) = address(e).map(network_of) else {
            return;
        };
        let learning = secs_ms(
            self.config
                .thresholds_for(&e.tenant)
                .new_network_learning_secs,
        );
        let max = self.config.max_networks_per_credential;
        let key = (e.tenant.clone(), Subject::new(kind, id));
        let state = self.networks.touch(&key, || Seen::new(now));
        let learned = state.learned(now, learning);
        if !state.learn(&network, max) {
            return;
        }
        if learned {
            out.push(Finding {
                rule: Rule::NewNetwork,
                shadow: mode == Mode::Shadow,
                tenant: key.0,
                subject: key.1,
                at: now,
                window_start: now,
                window_secs: 0,
                count: 1,
                threshold: 1,
                baseline: None,
                detail: Some(network),
                samples: vec![e.id.clone()],
            });
        }
    }

    fn new_environment(
        &mut self,
        e: &AuditEvent,
        now: Timestamp,
        mode: Mode,
        out: &mut Vec<Finding>,
    ) {
        let Some(subject) = used_credential(e) else {
            return;
        };
        let Some(env) = e.user_agent.as_deref().and_then(environment_of) else {
            return;
        };
        let learning = secs_ms(
            self.config
                .thresholds_for(&e.tenant)
                .new_network_learning_secs,
        );
        let max = self.config.max_networks_per_credential;
        let key = (e.tenant.clone(), subject);
        let state = self.environments.touch(&key, || Seen::new(now));
        let learned = state.learned(now, learning);
        if state.learn(&env, max) && learned {
            out.push(single(
                Rule::NewEnvironment,
                mode,
                key.0,
                key.1,
                now,
                Some(env),
                e,
            ));
        }
    }

    fn unusual_refresh(
        &mut self,
        e: &AuditEvent,
        now: Timestamp,
        mode: Mode,
        out: &mut Vec<Finding>,
    ) {
        let Some(family) = e.target.clone() else {
            return;
        };
        let subject = Subject::new(SubjectKind::RefreshFamily, family.clone());
        match e.action {
            Action::OAuthRefreshReuse => {
                let detail = Some("reused_after_rotation".to_owned());
                out.push(single(
                    Rule::UnusualRefresh,
                    mode,
                    e.tenant.clone(),
                    subject,
                    now,
                    detail,
                    e,
                ));
            }
            Action::OAuthRefreshRotate if e.outcome == Outcome::Success => {
                let th = self.config.thresholds_for(&e.tenant).clone();
                let max = self.config.max_networks_per_credential;
                let key = (e.tenant.clone(), family);
                let state = self.families.touch(&key, || Family {
                    rotations: WindowedCounter::new(
                        secs_ms(th.refresh_window_secs),
                        th.refresh_baseline_windows,
                        now,
                    ),
                    networks: Seen::new(now),
                });
                // A family's first network is where it was issued; any other is new.
                if let Some(network) = address(e).map(network_of) {
                    let known = !state.networks.seen.is_empty();
                    if state.networks.learn(&network, max) && known {
                        let detail = Some(format!("new_network:{network}"));
                        out.push(single(
                            Rule::UnusualRefresh,
                            mode,
                            e.tenant.clone(),
                            subject.clone(),
                            now,
                            detail,
                            e,
                        ));
                    }
                }
                // A grace-window hand-out is the same rotation again, not a new one.
                if e.reason
                    .as_ref()
                    .is_some_and(|r| r.code() == "within_grace")
                {
                    return;
                }
                let counter = &mut state.rotations;
                if let Some(spike) = counter.spike(now, &e.id, th.refresh_floor, th.refresh_factor)
                {
                    out.push(Finding {
                        rule: Rule::UnusualRefresh,
                        shadow: mode == Mode::Shadow,
                        tenant: e.tenant.clone(),
                        subject,
                        at: now,
                        window_start: counter.window_start(),
                        window_secs: th.refresh_window_secs,
                        count: spike.count,
                        threshold: spike.threshold,
                        baseline: Some(spike.baseline),
                        detail: Some("rate".to_owned()),
                        samples: counter.samples.clone(),
                    });
                }
            }
            _ => {}
        }
    }

    fn new_workload_subject(
        &mut self,
        e: &AuditEvent,
        now: Timestamp,
        mode: Mode,
        out: &mut Vec<Finding>,
    ) {
        if e.action != Action::FederationExchange || e.outcome != Outcome::Success {
            return;
        }
        let (Some(rule), Some(workload)) = (&e.target, &e.credential_id) else {
            return;
        };
        let learning = secs_ms(self.config.thresholds_for(&e.tenant).workload_learning_secs);
        let max = self.config.max_networks_per_credential;
        let key = (e.tenant.clone(), rule.clone());
        let state = self.workloads.touch(&key, || Seen::new(now));
        let learned = state.learned(now, learning);
        if state.learn(workload, max) && learned {
            let subject = Subject::new(SubjectKind::TrustRule, rule.clone());
            out.push(single(
                Rule::NewWorkloadSubject,
                mode,
                e.tenant.clone(),
                subject,
                now,
                Some(workload.clone()),
                e,
            ));
        }
    }

    fn break_glass_use(
        &mut self,
        e: &AuditEvent,
        now: Timestamp,
        mode: Mode,
        out: &mut Vec<Finding>,
    ) {
        if e.action != Action::AdminAuthenticate {
            return;
        }
        let Some(id) = &e.credential_id else {
            return;
        };
        if self.break_glass.get(id).is_none() {
            return;
        }
        let subject = Subject::new(SubjectKind::AdminCredential, id.clone());
        let detail = Some(e.outcome.as_str().to_owned());
        out.push(single(
            Rule::BreakGlassUse,
            mode,
            e.tenant.clone(),
            subject,
            now,
            detail,
            e,
        ));
    }
}

/// A finding for a rule that fires per event.
fn single(
    rule: Rule,
    mode: Mode,
    tenant: TenantId,
    subject: Subject,
    now: Timestamp,
    detail: Option<String>,
    e: &AuditEvent,
) -> Finding {
    Finding {
        rule,
        shadow: mode == Mode::Shadow,
        tenant,
        subject,
        at: now,
        window_start: now,
        window_secs: 0,
        count: 1,
        threshold: 1,
        baseline: None,
        detail,
        samples: vec![e.id.clone()],
    }
}

/// The sign-in pages' pattern events: stuffing per source address, spraying per tenant (the
/// password is never in the event, so the tenant is the subject). The event's target says how
/// many accounts (`"12 accounts"`).
fn sign_in_pattern(e: &AuditEvent, now: Timestamp, mode: Mode, rule: Rule, out: &mut Vec<Finding>) {
    let subject = match (rule, &e.action) {
        (Rule::CredentialStuffing, Action::UserSignInStuffing) => match address(e) {
            Some(ip) => Subject::new(SubjectKind::Address, ip.to_string()),
            None => Subject::new(SubjectKind::Tenant, e.tenant.as_str()),
        },
        (Rule::PasswordSpraying, Action::UserSignInSpraying) => {
            Subject::new(SubjectKind::Tenant, e.tenant.as_str())
        }
        _ => return,
    };
    let accounts = e
        .target
        .as_deref()
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    let mut f = single(
        rule,
        mode,
        e.tenant.clone(),
        subject,
        now,
        e.target.clone(),
        e,
    );
    if let Some(n) = accounts {
        f.count = n;
    }
    out.push(f);
}

/// The credential a successful use event is about (API key, client, admin credential).
fn used_credential(e: &AuditEvent) -> Option<Subject> {
    if e.outcome != Outcome::Success {
        return None;
    }
    let kind = match e.action {
        Action::ApiKeyVerify => SubjectKind::ApiKey,
        Action::OAuthTokenIssue => SubjectKind::Client,
        Action::AdminAuthenticate => SubjectKind::AdminCredential,
        _ => return None,
    };
    let id = match (&e.credential_id, e.actor.kind()) {
        (Some(id), _) => id.clone(),
        (None, ActorKind::Client(id)) if kind == SubjectKind::Client => id.to_owned(),
        _ => return None,
    };
    Some(Subject::new(kind, id))
}

/// The client software of a user agent: its first product token, lowercased (`curl` for
/// `curl/8.5.0`, `mozilla` for a browser), at most 32 characters; `None` for an empty one.
pub fn environment_of(user_agent: &str) -> Option<String> {
    let product = user_agent
        .split(|c: char| c == '/' || c.is_whitespace())
        .find(|s| !s.is_empty())?;
    let product: String = product
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        .take(32)
        .collect::<String>()
        .to_ascii_lowercase();
    (!product.is_empty()).then_some(product)
}

fn inactive_use(e: &AuditEvent, now: Timestamp, mode: Mode, out: &mut Vec<Finding>) {
    if e.outcome == Outcome::Success {
        return;
    }
    let Some(reason) = &e.reason else {
        return;
    };
    let (kind, id) = if e.action == Action::OAuthRefreshRotate {
        // A token of a revoked family: the family is the credential (the token's prefix
        // changes at every rotation).
        match (&e.target, reason.code()) {
            (Some(family), "family_revoked") => (SubjectKind::RefreshFamily, family),
            _ => return,
        }
    } else {
        if !INACTIVE_REASONS.contains(&reason.code()) {
            return;
        }
        match (credential_kind(&e.action), &e.credential_id) {
            (Some(kind), Some(id)) => (kind, id),
            _ => return,
        }
    };
    out.push(Finding {
        rule: Rule::InactiveCredentialUse,
        shadow: mode == Mode::Shadow,
        tenant: e.tenant.clone(),
        subject: Subject::new(kind, id.clone()),
        at: now,
        window_start: now,
        window_secs: 0,
        count: 1,
        threshold: 1,
        baseline: None,
        detail: Some(reason.code().to_owned()),
        samples: vec![e.id.clone()],
    });
}

/// An authentication that failed on the credential (not on storage, not a rate limit).
fn is_failed_auth(e: &AuditEvent) -> bool {
    let reason = e.reason.as_ref().map(|r| r.code());
    match e.action {
        Action::OAuthClientAuth
        | Action::OAuthClientAuthThrottled
        | Action::ApiKeyVerify
        | Action::AdminAuthenticate => {
            e.outcome == Outcome::Failure && reason != Some("storage_unavailable")
        }
        Action::GatewayDenied => e.outcome != Outcome::Success,
        _ => false,
    }
}

/// The kind of credential an authentication event's `credential_id` names.
fn credential_kind(action: &Action) -> Option<SubjectKind> {
    match action {
        Action::OAuthClientAuth | Action::OAuthClientAuthThrottled => Some(SubjectKind::Client),
        Action::ApiKeyVerify => Some(SubjectKind::ApiKey),
        Action::AdminAuthenticate => Some(SubjectKind::AdminCredential),
        _ => None,
    }
}

fn address(e: &AuditEvent) -> Option<IpAddr> {
    let ip: IpAddr = e.client_ip.as_deref()?.parse().ok()?;
    // An IPv4 address mapped into IPv6 is the IPv4 address.
    Some(ip.to_canonical())
}

fn secs_ms(secs: u64) -> i64 {
    i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests;
