//! What the detectors are told: a mode per rule (on, shadow, off) and thresholds, with a default
//! set and overrides per tenant. Defaults are on: a fresh installation alerts without any
//! configuration. This module only holds values and their checks; it never reads a file.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::tenant::TenantId;

/// One detector rule. Stored and labelled by [`Rule::as_str`]; never rename one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Rule {
    /// Failed authentications for one subject far above its own recent baseline.
    FailedAuthSpike,
    /// A revoked, disabled, expired or rotated-out credential was presented.
    InactiveCredentialUse,
    /// One admin revoked or created many credentials in a short time.
    BulkAdminAction,
    /// A credential was used from a network it was never seen on, after its learning period.
    NewNetwork,
    /// One source failed sign-ins on many accounts (the sign-in pages' own pattern event).
    CredentialStuffing,
    /// One password failed on many accounts (the sign-in pages' own pattern event).
    PasswordSpraying,
    /// A refresh-token family refreshing far faster than its history, from a network it was
    /// never refreshed from, or a rotated token presented again.
    UnusualRefresh,
    /// A credential used with client software (user agent product) it was never seen with,
    /// after its learning period.
    NewEnvironment,
    /// A workload-identity trust rule admitted a subject it had never admitted, after its
    /// learning period.
    NewWorkloadSubject,
    /// The break-glass (first-start bootstrap) admin credential was used, successfully or not.
    BreakGlassUse,
}

impl Rule {
    pub const ALL: [Rule; 10] = [
        Self::FailedAuthSpike,
        Self::InactiveCredentialUse,
        Self::BulkAdminAction,
        Self::NewNetwork,
        Self::CredentialStuffing,
        Self::PasswordSpraying,
        Self::UnusualRefresh,
        Self::NewEnvironment,
        Self::NewWorkloadSubject,
        Self::BreakGlassUse,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FailedAuthSpike => "failed_auth_spike",
            Self::InactiveCredentialUse => "inactive_credential_use",
            Self::BulkAdminAction => "bulk_admin_action",
            Self::NewNetwork => "new_network",
            Self::CredentialStuffing => "credential_stuffing",
            Self::PasswordSpraying => "password_spraying",
            Self::UnusualRefresh => "unusual_refresh",
            Self::NewEnvironment => "new_environment",
            Self::NewWorkloadSubject => "new_workload_subject",
            Self::BreakGlassUse => "break_glass_use",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a rule does when it matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    /// Raises an alert.
    #[default]
    On,
    /// Records what would have fired without alerting, to measure false positives first.
    Shadow,
    /// Does nothing.
    Off,
}

/// The mode of each rule.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Modes {
    pub failed_auth_spike: Mode,
    pub inactive_credential_use: Mode,
    pub bulk_admin_action: Mode,
    pub new_network: Mode,
    pub credential_stuffing: Mode,
    pub password_spraying: Mode,
    pub unusual_refresh: Mode,
    pub new_environment: Mode,
    pub new_workload_subject: Mode,
    pub break_glass_use: Mode,
}

impl Modes {
    pub fn of(&self, rule: Rule) -> Mode {
        match rule {
            Rule::FailedAuthSpike => self.failed_auth_spike,
            Rule::InactiveCredentialUse => self.inactive_credential_use,
            Rule::BulkAdminAction => self.bulk_admin_action,
            Rule::NewNetwork => self.new_network,
            Rule::CredentialStuffing => self.credential_stuffing,
            Rule::PasswordSpraying => self.password_spraying,
            Rule::UnusualRefresh => self.unusual_refresh,
            Rule::NewEnvironment => self.new_environment,
            Rule::NewWorkloadSubject => self.new_workload_subject,
            Rule::BreakGlassUse => self.break_glass_use,
        }
    }
}

/// One tenant's rule modes: each rule set here replaces the installation's mode for that
/// tenant (e.g. a rule on everywhere but in shadow for the tenant whose traffic is being
/// measured); rules left out keep the installation's mode.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModeOverrides {
    pub failed_auth_spike: Option<Mode>,
    pub inactive_credential_use: Option<Mode>,
    pub bulk_admin_action: Option<Mode>,
    pub new_network: Option<Mode>,
    pub credential_stuffing: Option<Mode>,
    pub password_spraying: Option<Mode>,
    pub unusual_refresh: Option<Mode>,
    pub new_environment: Option<Mode>,
    pub new_workload_subject: Option<Mode>,
    pub break_glass_use: Option<Mode>,
}

impl ModeOverrides {
    pub fn of(&self, rule: Rule) -> Option<Mode> {
        match rule {
            Rule::FailedAuthSpike => self.failed_auth_spike,
            Rule::InactiveCredentialUse => self.inactive_credential_use,
            Rule::BulkAdminAction => self.bulk_admin_action,
            Rule::NewNetwork => self.new_network,
            Rule::CredentialStuffing => self.credential_stuffing,
            Rule::PasswordSpraying => self.password_spraying,
            Rule::UnusualRefresh => self.unusual_refresh,
            Rule::NewEnvironment => self.new_environment,
            Rule::NewWorkloadSubject => self.new_workload_subject,
            Rule::BreakGlassUse => self.break_glass_use,
        }
    }
}

/// Thresholds, as a whole set (the defaults, or one tenant's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Thresholds {
    /// Length of one failed-authentication window.
    pub failed_auth_window_secs: u64,
    /// Complete windows averaged into a subject's baseline.
    pub failed_auth_baseline_windows: usize,
    /// Failures in one window below which nothing fires, whatever the baseline (quiet subjects).
    pub failed_auth_floor: u64,
    /// How many times its baseline a subject must fail in one window (busy subjects).
    pub failed_auth_factor: f64,
    /// Length of the bulk admin window.
    pub bulk_window_secs: u64,
    /// Revocations and disables by one admin in one window that fire.
    pub bulk_revocations: u64,
    /// Credentials created by one admin in one window that fire.
    pub bulk_creations: u64,
    /// How long a credential's networks (and client software) are learned before a new one
    /// fires.
    pub new_network_learning_secs: u64,
    /// Length of one refresh-rate window (per refresh-token family).
    pub refresh_window_secs: u64,
    /// Complete windows averaged into a family's refresh baseline.
    pub refresh_baseline_windows: usize,
    /// Rotations of one family in one window below which the rate never fires.
    pub refresh_floor: u64,
    /// How many times its baseline a family must rotate in one window.
    pub refresh_factor: f64,
    /// How long a trust rule's subjects are learned before a new one fires.
    pub workload_learning_secs: u64,
}

impl Default for Thresholds {
    fn default() -> Self {
        Self {
            failed_auth_window_secs: 300,
            failed_auth_baseline_windows: 12,
            failed_auth_floor: 20,
            failed_auth_factor: 5.0,
            bulk_window_secs: 300,
            bulk_revocations: 20,
            bulk_creations: 50,
            new_network_learning_secs: 7 * 24 * 3600,
            refresh_window_secs: 600,
            refresh_baseline_windows: 12,
            refresh_floor: 10,
            refresh_factor: 5.0,
            workload_learning_secs: 7 * 24 * 3600,
        }
    }
}

impl Thresholds {
    /// Every value that would make a rule meaningless, as messages for `config check`.
    pub fn problems(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut need = |ok: bool, what: &str| {
            if !ok {
                out.push(what.to_owned());
            }
        };
        need(
            self.failed_auth_window_secs > 0,
            "failed_auth_window_secs must be positive",
        );
        need(
            (1..=1000).contains(&self.failed_auth_baseline_windows),
            "failed_auth_baseline_windows must be 1 to 1000",
        );
        need(
            self.failed_auth_floor > 0,
            "failed_auth_floor must be positive",
        );
        need(
            self.failed_auth_factor.is_finite() && self.failed_auth_factor >= 1.0,
            "failed_auth_factor must be at least 1",
        );
        need(
            self.bulk_window_secs > 0,
            "bulk_window_secs must be positive",
        );
        need(
            self.bulk_revocations > 0,
            "bulk_revocations must be positive",
        );
        need(self.bulk_creations > 0, "bulk_creations must be positive");
        need(
            self.refresh_window_secs > 0,
            "refresh_window_secs must be positive",
        );
        need(
            (1..=1000).contains(&self.refresh_baseline_windows),
            "refresh_baseline_windows must be 1 to 1000",
        );
        need(self.refresh_floor > 0, "refresh_floor must be positive");
        need(
            self.refresh_factor.is_finite() && self.refresh_factor >= 1.0,
            "refresh_factor must be at least 1",
        );
        out
    }
}

/// The `[detect]` configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    /// Runs the detectors at all.
    pub enabled: bool,
    /// The mode of each rule.
    pub rules: Modes,
    /// Thresholds for every tenant without its own.
    pub thresholds: Thresholds,
    /// Per-tenant thresholds, replacing the defaults as a whole for that tenant.
    pub tenants: HashMap<String, Thresholds>,
    /// Per-tenant rule modes, replacing `rules` rule by rule for that tenant.
    pub tenant_rules: HashMap<String, ModeOverrides>,
    /// Subjects each rule keeps state for; beyond it the least recently seen is forgotten.
    pub max_subjects: usize,
    /// Networks remembered per credential for the new-network rule.
    pub max_networks_per_credential: usize,
    /// Shortest time between two alert updates for one rule and subject; findings in between
    /// are counted into the next update.
    pub alert_interval_secs: u64,
    /// Resolved alerts (and delivered webhook deliveries) are deleted this many days after
    /// they were resolved (delivered); 0 keeps them forever. Open, acknowledged and
    /// dead-lettered ones are never deleted.
    pub alert_retention_days: u64,
}

impl Default for DetectConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            rules: Modes::default(),
            thresholds: Thresholds::default(),
            tenants: HashMap::new(),
            tenant_rules: HashMap::new(),
            max_subjects: 50_000,
            max_networks_per_credential: 32,
            alert_interval_secs: 60,
            alert_retention_days: 90,
        }
    }
}

impl DetectConfig {
    /// The thresholds in force for `tenant`.
    pub fn thresholds_for(&self, tenant: &TenantId) -> &Thresholds {
        self.tenants
            .get(tenant.as_str())
            .unwrap_or(&self.thresholds)
    }

    /// The mode of `rule` for findings reported in `tenant`.
    pub fn mode_for(&self, rule: Rule, tenant: &TenantId) -> Mode {
        self.tenant_rules
            .get(tenant.as_str())
            .and_then(|o| o.of(rule))
            .unwrap_or_else(|| self.rules.of(rule))
    }

    /// Whether `rule` runs for some tenant (on or in shadow by default or by an override).
    pub fn runs_anywhere(&self, rule: Rule) -> bool {
        self.rules.of(rule) != Mode::Off
            || self
                .tenant_rules
                .values()
                .any(|o| o.of(rule).is_some_and(|m| m != Mode::Off))
    }

    /// Every problem, as messages for `config check`.
    pub fn problems(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .thresholds
            .problems()
            .into_iter()
            .map(|p| format!("detect.thresholds: {p}"))
            .collect();
        for (t, th) in &self.tenants {
            if TenantId::parse(t).is_err() {
                out.push(format!("detect.tenants: {t:?} is not a tenant id"));
            }
            out.extend(
                th.problems()
                    .into_iter()
                    .map(|p| format!("detect.tenants.{t}: {p}")),
            );
        }
        for t in self.tenant_rules.keys() {
            if TenantId::parse(t).is_err() {
                out.push(format!("detect.tenant_rules: {t:?} is not a tenant id"));
            }
        }
        if !(1..=10_000_000).contains(&self.max_subjects) {
            out.push("detect.max_subjects must be 1 to 10000000".into());
        }
        if self.alert_retention_days > 36_500 {
            out.push(
                "detect.alert_retention_days must be at most 36500 (0 keeps alerts forever)".into(),
            );
        }
        if !(1..=1024).contains(&self.max_networks_per_credential) {
            out.push("detect.max_networks_per_credential must be 1 to 1024".into());
        }
        out
    }
}
