//! Warnings about trust rules that are valid but probably wider than meant. A lint never
//! refuses a rule (the save-time checks in [`super::rule`] do that); it tells the operator what
//! the rule also admits.
//!
//! GitHub Actions rules are checked for three known mistakes: a rule that says nothing about
//! the ref, environment or event matches pull requests, including those from forks; a ref test
//! like `refs/heads/*` matches any branch anyone with push access creates; and a rule on
//! `workflow_ref` alone constrains the calling workflow, not the reusable workflow that actually
//! runs the job (`job_workflow_ref`).
//!
//! Must never: read a token or decide a request.

use super::condition::Test;
use super::preset::Preset;
use super::rule::TrustRule;

/// One warning about a rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lint {
    /// Nothing pins the ref, environment, event or subject context.
    MatchesPullRequests,
    /// A `ref` condition admits every branch.
    AnyBranch,
    /// `workflow_ref` is constrained but `job_workflow_ref` is not.
    OnlyCallingWorkflow,
}

impl Lint {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MatchesPullRequests => "matches_pull_requests",
            Self::AnyBranch => "any_branch",
            Self::OnlyCallingWorkflow => "only_calling_workflow",
        }
    }

    /// What the operator should read.
    pub fn message(self) -> &'static str {
        match self {
            Self::MatchesPullRequests => {
                "no condition on ref, environment, event_name, subject_context or an exact sub refuses pull requests: pull requests, including from forks, match"
            }
            Self::AnyBranch => "the ref condition admits every branch anyone with push access can create",
            Self::OnlyCallingWorkflow => {
                "workflow_ref names the calling workflow; constrain job_workflow_ref for the reusable workflow that runs the job"
            }
        }
    }
}

/// Values a pull request's token carries in the claims that tell a pull request apart (a fork's
/// included: GitHub gives it the same claims, with its own `actor`).
fn pull_request_values(claim: &str) -> &'static [&'static str] {
    match claim {
        "event_name" => &["pull_request", "pull_request_target"],
        "ref" => &["refs/pull/1/merge", "refs/pull/1/head"],
        "subject_context" => &["pull_request"],
        _ => &[],
    }
}

/// Whether a condition on `claim` refuses every pull request's token. `exists` refuses none;
/// a `sub` test refuses them only when it names exact subjects none of which is a pull
/// request's (`repo:o/r:pull_request`): a prefix or glob over `sub` is what lets them in.
fn excludes_pull_requests(claim: &str, test: &Test) -> bool {
    match (claim, test) {
        (_, Test::Exists) => false,
        ("sub", Test::Equals(v)) => !v.ends_with(":pull_request"),
        ("sub", Test::OneOf(vs)) => !vs.iter().any(|v| v.ends_with(":pull_request")),
        ("sub", _) => false,
        // Only a protected environment's name; a pull request job may name one too, but the
        // environment's own protection rules then apply.
        ("environment", _) => true,
        ("ref" | "event_name" | "subject_context", t) => {
            !pull_request_values(claim).iter().any(|v| t.holds_for(v))
        }
        _ => false,
    }
}

/// The warnings for `rule` read under `preset`.
pub fn lint(rule: &TrustRule, preset: Preset) -> Vec<Lint> {
    if preset != Preset::GithubActions {
        return Vec::new();
    }
    let mut out = Vec::new();
    let has = |claim: &str| rule.conditions.iter().any(|c| c.claim() == claim);
    // Conditions are all required, so one that refuses every pull request is enough.
    let excludes_pull_requests = rule
        .conditions
        .iter()
        .any(|c| excludes_pull_requests(c.claim(), c.test()));
    if !excludes_pull_requests {
        out.push(Lint::MatchesPullRequests);
    }
    let any_branch = rule
        .conditions
        .iter()
        .filter(|c| c.claim() == "ref")
        .any(|c| match c.test() {
            Test::Prefix(p) => p.trim_end_matches('/') == "refs/heads" || p.is_empty(),
            Test::Glob(g) => matches!(g.as_str(), "refs/heads/*" | "*"),
            _ => false,
        });
    if any_branch {
        out.push(Lint::AnyBranch);
    }
    if has("workflow_ref") && !has("job_workflow_ref") {
        out.push(Lint::OnlyCallingWorkflow);
    }
    out
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::federation::condition::{ClaimCondition, Glob};
    use crate::federation::preset::GITHUB_ISSUER;
    use crate::federation::rule::RuleId;
    use crate::oauth::{Audience, ScopeSet};

    fn c(claim: &str, test: Test) -> ClaimCondition {
        ClaimCondition::new(claim, test).expect("valid")
    }

    fn eq(claim: &str, v: &str) -> ClaimCondition {
        c(claim, Test::Equals(v.into()))
    }

    fn rule(conditions: Vec<ClaimCondition>) -> TrustRule {
        TrustRule {
            id: RuleId::parse("r").expect("id"),
            issuer: GITHUB_ISSUER.into(),
            audience: "a".into(),
            conditions,
            audiences: vec![Audience::parse("api").expect("aud")],
            scopes: ScopeSet::default(),
            max_lifetime: Duration::from_secs(60),
            max_token_age: None,
            client_id: None,
            bound_to_subject_lifetime: true,
        }
    }

    #[test]
    fn a_careful_rule_has_no_warnings() {
        let r = rule(vec![
            eq("repository_id", "2002"),
            eq("ref", "refs/heads/main"),
            eq(
                "job_workflow_ref",
                "acme/wf/.github/workflows/d.yml@refs/heads/main",
            ),
        ]);
        assert_eq!(lint(&r, Preset::GithubActions), vec![]);
    }

    #[test]
    fn the_three_mistakes_are_named() {
        let repo_only = rule(vec![eq("repository_id", "2002")]);
        assert_eq!(
            lint(&repo_only, Preset::GithubActions),
            vec![Lint::MatchesPullRequests]
        );
        for any in [
            c(
                "ref",
                Test::Glob(Glob::parse("refs/heads/*").expect("glob")),
            ),
            c("ref", Test::Prefix("refs/heads/".into())),
        ] {
            let r = rule(vec![eq("repository_id", "2002"), any]);
            assert_eq!(lint(&r, Preset::GithubActions), vec![Lint::AnyBranch]);
        }
        let release = rule(vec![
            eq("repository_id", "2002"),
            c(
                "ref",
                Test::Glob(Glob::parse("refs/heads/release-*").expect("glob")),
            ),
        ]);
        assert_eq!(lint(&release, Preset::GithubActions), vec![]);
        let calling = rule(vec![
            eq("repository_id", "2002"),
            eq("environment", "prod"),
            eq(
                "workflow_ref",
                "acme/app/.github/workflows/ci.yml@refs/heads/main",
            ),
        ]);
        assert_eq!(
            lint(&calling, Preset::GithubActions),
            vec![Lint::OnlyCallingWorkflow]
        );
        // Other platforms' rules are not read with GitHub's field names.
        assert_eq!(lint(&repo_only, Preset::Kubernetes), vec![]);
        for l in [
            Lint::MatchesPullRequests,
            Lint::AnyBranch,
            Lint::OnlyCallingWorkflow,
        ] {
            assert!(!l.message().is_empty() && !l.as_str().is_empty());
        }
    }

    #[test]
    fn a_condition_that_still_admits_pull_requests_does_not_pin_the_context() {
        let warned = |cond: ClaimCondition| {
            lint(
                &rule(vec![eq("repository_id", "2002"), cond]),
                Preset::GithubActions,
            )
            .contains(&Lint::MatchesPullRequests)
        };
        let glob = |claim: &str, g: &str| c(claim, Test::Glob(Glob::parse(g).expect("glob")));
        // Admit pull requests (a fork's included).
        assert!(warned(eq("event_name", "pull_request_target")));
        assert!(warned(c(
            "event_name",
            Test::OneOf(vec!["push".into(), "pull_request".into()])
        )));
        assert!(warned(c("ref", Test::Prefix("refs/".into()))));
        assert!(warned(glob("sub", "repo:acme/deploy:*")));
        assert!(warned(c("sub", Test::Prefix("repo:acme/deploy:".into()))));
        assert!(warned(eq("sub", "repo:acme/deploy:pull_request")));
        assert!(warned(c("ref", Test::Exists)));
        assert!(warned(c("environment", Test::Exists)));
        // Refuse them.
        assert!(!warned(eq("event_name", "push")));
        assert!(!warned(glob("ref", "refs/tags/v*")));
        assert!(!warned(eq("sub", "repo:acme/deploy:ref:refs/heads/main")));
        assert!(!warned(eq("environment", "prod")));
        assert!(!warned(eq("subject_context", "environment")));
    }
}
