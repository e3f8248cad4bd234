//! Workload identity federation rules: which external identity tokens (CI jobs, Kubernetes
//! pods, SPIFFE workloads) a tenant trusts, and what they may be exchanged for.
//!
//! The flow this module decides, with no I/O: an external token whose signature the service has
//! already checked (through jose's external-identity profile) is read into a [`Workload`]
//! ([`claims`], with the platform's subject split into fields by [`subject`]); the tenant's
//! [`rule::TrustRule`]s for that issuer are evaluated ([`condition`]) and exactly one is
//! selected ([`rule::select_rule`]); the selected rule bounds the audience, scopes and lifetime
//! of the token issued in return ([`rule::decide_grant`], [`rule::issued_lifetime`]), whose
//! claims record the external identity ([`issued`]).
//!
//! What it must never do: fetch keys, read the clock, or accept a rule whose meaning depends on
//! a name someone else can register (a rule on an issuer shared by every customer must pin an
//! immutable owner or project id: [`preset::shared_issuer`]). A missing claim never satisfies a
//! condition, and no failure reason reaches the caller (they are for the audit log).

pub mod claims;
pub mod condition;
pub mod issued;
pub mod lint;
pub mod preset;
pub mod rule;
pub mod subject;

pub use claims::{ClaimValue, Workload, WorkloadError};
pub use condition::{ClaimCondition, ConditionError, Glob, Test};
pub use preset::{Preset, TrustedIssuer};
pub use rule::{RuleError, RuleId, RuleMiss, SelectError, TrustRule};
