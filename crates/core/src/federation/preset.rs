//! Platform presets and trusted issuers: what each platform's tokens look like (which fields
//! its subject derives, its default token-age bound) and which issuers are shared by every
//! customer of a platform.
//!
//! Must never: decide trust from the preset alone. The shared-issuer rule is keyed on the
//! issuer URL ([`shared_issuer`]), so an operator who picks the generic preset for
//! `https://token.actions.githubusercontent.com` is held to the same pinning rule.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::claims::WorkloadError;
use super::subject;
use crate::oauth::ASSERTION_ALGORITHMS;

/// GitHub Actions on github.com: one issuer for every repository in the world.
pub const GITHUB_ISSUER: &str = "https://token.actions.githubusercontent.com";
/// gitlab.com: one issuer for every project on it.
pub const GITLAB_COM_ISSUER: &str = "https://gitlab.com";
/// Buildkite's hosted agent API: one issuer for every organization.
pub const BUILDKITE_ISSUER: &str = "https://agent.buildkite.com";

/// A platform whose token shape Portcullis knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// GitHub Actions, github.com or GitHub Enterprise Server.
    GithubActions,
    /// GitLab CI `id_tokens`, gitlab.com or self-managed.
    Gitlab,
    /// Kubernetes service-account tokens (projected or TokenRequest).
    Kubernetes,
    /// SPIFFE JWT-SVIDs.
    SpiffeJwtSvid,
    Buildkite,
    Circleci,
    /// Any OpenID Connect issuer: no derived fields.
    GenericOidc,
}

impl Preset {
    pub const ALL: [Self; 7] = [
        Self::GithubActions,
        Self::Gitlab,
        Self::Kubernetes,
        Self::SpiffeJwtSvid,
        Self::Buildkite,
        Self::Circleci,
        Self::GenericOidc,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GithubActions => "github_actions",
            Self::Gitlab => "gitlab",
            Self::Kubernetes => "kubernetes",
            Self::SpiffeJwtSvid => "spiffe_jwt_svid",
            Self::Buildkite => "buildkite",
            Self::Circleci => "circleci",
            Self::GenericOidc => "generic_oidc",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The issuer a preset means when the operator gives none (the hosted service).
    pub fn default_issuer(self) -> Option<&'static str> {
        match self {
            Self::GithubActions => Some(GITHUB_ISSUER),
            Self::Gitlab => Some(GITLAB_COM_ISSUER),
            Self::Buildkite => Some(BUILDKITE_ISSUER),
            _ => None,
        }
    }

    /// The longest subject-token lifetime (`exp - iat`) accepted by default. CI tokens live
    /// minutes; a Kubernetes token older than a day is refused unless a rule allows it (the
    /// year-long tokens clusters hand out for compatibility are the case this bounds).
    pub fn default_max_token_age(self) -> Duration {
        match self {
            Self::Kubernetes => Duration::from_secs(24 * 3600),
            _ => Duration::from_secs(3600),
        }
    }

    /// The fields this platform's subject and nested claims derive (see [`subject`]).
    pub fn derive(
        self,
        sub: &str,
        claims: &Map<String, Value>,
    ) -> Result<subject::Fields, WorkloadError> {
        match self {
            Self::GithubActions => subject::github(sub),
            Self::Gitlab => subject::gitlab(sub),
            Self::Kubernetes => subject::kubernetes(sub, claims),
            Self::SpiffeJwtSvid => subject::spiffe(sub),
            Self::Buildkite => subject::buildkite(sub),
            Self::Circleci => subject::circleci(sub),
            Self::GenericOidc => Ok(Vec::new()),
        }
    }
}

/// Normalises an issuer for comparison with the shared list: lower-case scheme and host, no
/// trailing `/`.
fn normalise(issuer: &str) -> String {
    let trimmed = issuer.trim_end_matches('/');
    match trimmed.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            format!(
                "{}://{}{}",
                scheme.to_ascii_lowercase(),
                host.to_ascii_lowercase(),
                path
            )
        }
        None => trimmed.to_owned(),
    }
}

/// If `issuer` is shared by every customer of a platform, the immutable id fields one of which
/// a rule on it must pin with `equals` or `one_of`. (GitHub Enterprise Cloud's per-enterprise
/// issuer `https://token.actions.githubusercontent.com/<slug>` and self-managed GitLab are not
/// shared.)
pub fn shared_issuer(issuer: &str) -> Option<&'static [&'static str]> {
    match normalise(issuer).as_str() {
        GITHUB_ISSUER => Some(&["repository_owner_id", "repository_id"]),
        GITLAB_COM_ISSUER => Some(&["namespace_id", "project_id"]),
        BUILDKITE_ISSUER => Some(&["organization_id", "pipeline_id"]),
        _ => None,
    }
}

/// Why a trusted-issuer setting is refused. Operator-facing text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IssuerError {
    #[error("an issuer is an https URL of at most 512 characters, without query or fragment")]
    BadIssuer,
    #[error("allowed algorithms are a non-empty subset of ES256, ES384, RS256, PS256, EdDSA")]
    BadAlgorithms,
    #[error("the maximum token age is 1 second to 366 days")]
    BadMaxAge,
}

/// An external issuer a tenant trusts. Where its keys come from is the service's concern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedIssuer {
    pub issuer: String,
    pub preset: Preset,
    /// Asymmetric JWS algorithms accepted on its tokens (never `none` or HS*).
    pub algorithms: Vec<String>,
    /// Longest subject-token lifetime accepted unless a rule allows more.
    pub max_token_age: Duration,
}

impl TrustedIssuer {
    /// Checks a setting before it is saved. `insecure_http` admits `http://` issuers (tests and
    /// local clusters only).
    pub fn check(&self, insecure_http: bool) -> Result<(), IssuerError> {
        let i = &self.issuer;
        let scheme_ok = i.starts_with("https://") || (insecure_http && i.starts_with("http://"));
        let host_ok = i
            .split_once("://")
            .is_some_and(|(_, rest)| !rest.is_empty() && !rest.starts_with('/'));
        if !scheme_ok || !host_ok || i.len() > 512 || i.contains(['?', '#', ' ']) || !i.is_ascii() {
            return Err(IssuerError::BadIssuer);
        }
        let algs_ok = !self.algorithms.is_empty()
            && self
                .algorithms
                .iter()
                .all(|a| ASSERTION_ALGORITHMS.contains(&a.as_str()));
        if !algs_ok {
            return Err(IssuerError::BadAlgorithms);
        }
        if self.max_token_age.is_zero() || self.max_token_age > Duration::from_secs(366 * 86400) {
            return Err(IssuerError::BadMaxAge);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shared_issuers_are_recognised_in_any_spelling() {
        assert!(shared_issuer("https://token.actions.githubusercontent.com").is_some());
        assert!(shared_issuer("https://token.actions.githubusercontent.com/").is_some());
        assert!(shared_issuer("https://TOKEN.actions.githubusercontent.com").is_some());
        assert!(shared_issuer("https://gitlab.com").is_some());
        assert!(shared_issuer("https://agent.buildkite.com/").is_some());
        // Per-enterprise and self-managed issuers belong to one customer.
        assert!(shared_issuer("https://token.actions.githubusercontent.com/acme").is_none());
        assert!(shared_issuer("https://gitlab.acme.example").is_none());
        assert!(shared_issuer("https://ghes.acme.example/_services/token").is_none());
    }

    #[test]
    fn preset_names_round_trip() {
        for p in Preset::ALL {
            assert_eq!(Preset::parse(p.as_str()), Some(p));
        }
        assert_eq!(Preset::parse("github"), None);
    }

    #[test]
    fn an_issuer_setting_is_checked() {
        let ok = TrustedIssuer {
            issuer: "https://kube.example/".into(),
            preset: Preset::Kubernetes,
            algorithms: vec!["RS256".into()],
            max_token_age: Preset::Kubernetes.default_max_token_age(),
        };
        assert_eq!(ok.check(false), Ok(()));
        let with = |f: &dyn Fn(&mut TrustedIssuer)| {
            let mut i = ok.clone();
            f(&mut i);
            i.check(false)
        };
        assert_eq!(
            with(&|i| i.issuer = "http://kube.example".into()),
            Err(IssuerError::BadIssuer)
        );
        assert_eq!(
            with(&|i| i.issuer = "https://".into()),
            Err(IssuerError::BadIssuer)
        );
        assert_eq!(
            with(&|i| i.issuer = "https://k/?a".into()),
            Err(IssuerError::BadIssuer)
        );
        assert_eq!(
            with(&|i| i.algorithms = vec![]),
            Err(IssuerError::BadAlgorithms)
        );
        for alg in ["none", "HS256", "rs256"] {
            assert_eq!(
                with(&|i| i.algorithms = vec!["RS256".into(), alg.into()]),
                Err(IssuerError::BadAlgorithms)
            );
        }
        assert_eq!(
            with(&|i| i.max_token_age = Duration::ZERO),
            Err(IssuerError::BadMaxAge)
        );
        let mut local = ok.clone();
        local.issuer = "http://127.0.0.1:8443".into();
        assert_eq!(local.check(true), Ok(()));
    }
}
