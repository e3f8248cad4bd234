use serde_json::{json, Map, Value};

use super::*;
use crate::federation::condition::Glob;
use crate::federation::preset::{Preset, GITHUB_ISSUER, GITLAB_COM_ISSUER};
use crate::federation::ClaimValue;

const NOW: i64 = 1_800_000_000;

fn now() -> Timestamp {
    Timestamp::from_secs(NOW)
}

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("test input is an object"),
    }
}

fn github_issuer() -> TrustedIssuer {
    TrustedIssuer {
        issuer: GITHUB_ISSUER.into(),
        preset: Preset::GithubActions,
        algorithms: vec!["RS256".into()],
        max_token_age: Preset::GithubActions.default_max_token_age(),
    }
}

/// A github.com token as GitHub documents it, for `acme/deploy` (owner 1001, repo 2002).
fn github_claims(sub: &str, extra: Value) -> Map<String, Value> {
    let mut m = obj(json!({
        "iss": GITHUB_ISSUER, "sub": sub, "aud": "https://portcullis.example",
        "exp": NOW + 300, "iat": NOW - 10, "nbf": NOW - 10, "jti": "j-1",
        "repository": "acme/deploy", "repository_id": "2002",
        "repository_owner": "acme", "repository_owner_id": "1001",
        "ref": "refs/heads/main", "ref_type": "branch", "event_name": "push",
        "job_workflow_ref": "acme/deploy/.github/workflows/release.yml@refs/heads/main",
        "repository_visibility": "private", "runner_environment": "github-hosted",
    }));
    if let Value::Object(e) = extra {
        m.extend(e);
    }
    m
}

fn workload(claims: &Map<String, Value>) -> Workload {
    Workload::from_claims(Preset::GithubActions, claims).expect("valid")
}

fn cond(claim: &str, test: Test) -> ClaimCondition {
    ClaimCondition::new(claim, test).expect("valid")
}

fn eq(claim: &str, v: &str) -> ClaimCondition {
    cond(claim, Test::Equals(v.into()))
}

fn rule(id: &str, conditions: Vec<ClaimCondition>) -> TrustRule {
    TrustRule {
        id: RuleId::parse(id).expect("valid"),
        issuer: GITHUB_ISSUER.into(),
        audience: "https://portcullis.example".into(),
        conditions,
        audiences: vec![
            Audience::parse("deploy-api").expect("valid"),
            Audience::parse("artifacts").expect("valid"),
        ],
        scopes: ScopeSet::parse_delimited("deploy read").expect("valid"),
        max_lifetime: Duration::from_secs(900),
        max_token_age: None,
        client_id: None,
        bound_to_subject_lifetime: false,
    }
}

/// The rule an operator should write for "acme/deploy's main branch": immutable ids plus ref.
fn main_branch_rule() -> TrustRule {
    rule(
        "deploy-main",
        vec![
            eq("repository_owner_id", "1001"),
            eq("repository_id", "2002"),
            eq("ref", "refs/heads/main"),
        ],
    )
}

#[test]
fn a_main_branch_push_matches_the_main_branch_rule() {
    let w = workload(&github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({}),
    ));
    assert_eq!(
        main_branch_rule().evaluate(&github_issuer(), &w, now()),
        Ok(())
    );
    // The immutable subject form reads the same.
    let w = workload(&github_claims(
        "repo:acme@1001/deploy@2002:ref:refs/heads/main",
        json!({}),
    ));
    assert_eq!(
        main_branch_rule().evaluate(&github_issuer(), &w, now()),
        Ok(())
    );
}

#[test]
fn a_look_alike_owner_with_another_id_is_refused() {
    // Someone re-creates "acme" (or registers "acme" after a rename): same names, new ids.
    let claims = github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({"repository_owner_id": "6666", "repository_id": "7777"}),
    );
    let miss = main_branch_rule()
        .evaluate(&github_issuer(), &workload(&claims), now())
        .expect_err("refused");
    assert_eq!(
        miss.reason,
        MissReason::ConditionFailed {
            index: 0,
            claim: "repository_owner_id".into(),
            op: "equals"
        }
    );
    // A name-only rule would have matched: that is why the shared-issuer rule refuses it.
    let by_name = rule("by-name", vec![eq("repository", "acme/deploy")]);
    assert!(matches!(
        by_name.check(&github_issuer()),
        Err(RuleError::SharedIssuerUnpinned { .. })
    ));
    // The immutable subject with ids that disagree with the claims is unreadable.
    let lying = github_claims(
        "repo:acme@1001/deploy@2002:ref:refs/heads/main",
        json!({"repository_owner_id": "6666"}),
    );
    assert_eq!(
        Workload::from_claims(Preset::GithubActions, &lying),
        Err(super::super::WorkloadError::Conflict(
            "repository_owner_id".into()
        ))
    );
    // An owner whose name only starts like ours fails an exact name condition too.
    let prefixed = github_claims(
        "repo:acme-evil/deploy:ref:refs/heads/main",
        json!({"repository_owner": "acme-evil", "repository": "acme-evil/deploy",
               "repository_owner_id": "1001"}),
    );
    let r = rule(
        "named",
        vec![
            eq("repository_owner_id", "1001"),
            eq("repository_owner", "acme"),
        ],
    );
    assert!(r
        .evaluate(&github_issuer(), &workload(&prefixed), now())
        .is_err());
}

#[test]
fn a_fork_pull_request_does_not_match_a_main_branch_rule() {
    // A pull request from a fork runs in the base repository's context with the PR's merge ref.
    let claims = github_claims(
        "repo:acme/deploy:pull_request",
        json!({"ref": "refs/pull/42/merge", "event_name": "pull_request",
               "head_ref": "attacker:main", "base_ref": "main"}),
    );
    let w = workload(&claims);
    assert_eq!(
        w.field("subject_context"),
        Some(&ClaimValue::Str("pull_request".into()))
    );
    let miss = main_branch_rule()
        .evaluate(&github_issuer(), &w, now())
        .expect_err("refused");
    assert_eq!(
        miss.reason,
        MissReason::ConditionFailed {
            index: 2,
            claim: "ref".into(),
            op: "equals"
        }
    );
    // Even a rule on the subject context alone refuses it.
    let r = rule(
        "ctx",
        vec![eq("repository_id", "2002"), eq("subject_context", "ref")],
    );
    assert!(r.evaluate(&github_issuer(), &w, now()).is_err());
}

#[test]
fn a_missing_claim_always_fails_whatever_the_test() {
    let w = workload(&github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({}),
    ));
    for test in [
        Test::Equals("prod".into()),
        Test::OneOf(vec!["prod".into()]),
        Test::Prefix("p".into()),
        Test::Glob(Glob::parse("*").expect("valid")),
        Test::Exists,
    ] {
        let r = rule(
            "env",
            vec![eq("repository_id", "2002"), cond("environment", test)],
        );
        assert_eq!(
            r.evaluate(&github_issuer(), &w, now())
                .expect_err("refused")
                .reason,
            MissReason::ClaimMissing {
                index: 1,
                claim: "environment".into()
            }
        );
    }
    // An empty string counts as missing.
    let w = workload(&github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({"environment": ""}),
    ));
    let r = rule(
        "env",
        vec![
            eq("repository_id", "2002"),
            cond("environment", Test::Exists),
        ],
    );
    assert!(r.evaluate(&github_issuer(), &w, now()).is_err());
}

#[test]
fn each_test_kind_matches_and_refuses() {
    let w = workload(&github_claims(
        "repo:acme/deploy:environment:prod-eu",
        json!({"environment": "prod-eu"}),
    ));
    let ok = |c: ClaimCondition| {
        rule("r", vec![eq("repository_id", "2002"), c])
            .evaluate(&github_issuer(), &w, now())
            .is_ok()
    };
    assert!(ok(eq("environment", "prod-eu")));
    assert!(!ok(eq("environment", "prod")));
    assert!(ok(cond(
        "environment",
        Test::OneOf(vec!["staging".into(), "prod-eu".into()])
    )));
    assert!(!ok(cond(
        "environment",
        Test::OneOf(vec!["staging".into()])
    )));
    assert!(ok(cond("environment", Test::Prefix("prod-".into()))));
    assert!(!ok(cond("environment", Test::Prefix("staging".into()))));
    assert!(ok(cond(
        "job_workflow_ref",
        Test::Glob(
            Glob::parse("acme/deploy/.github/workflows/*.yml@refs/heads/main").expect("valid")
        )
    )));
    assert!(!ok(cond(
        "job_workflow_ref",
        Test::Glob(Glob::parse("acme/*@refs/heads/main").expect("valid"))
    )));
    assert!(ok(cond("environment", Test::Exists)));
    // List claims: a test holds when it holds for one element.
    let w2 = workload(&github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({"groups": ["ops", "dev"]}),
    ));
    let r = rule("g", vec![eq("repository_id", "2002"), eq("groups", "ops")]);
    assert!(r.evaluate(&github_issuer(), &w2, now()).is_ok());
    let r = rule(
        "g",
        vec![eq("repository_id", "2002"), eq("groups", "admin")],
    );
    assert!(r.evaluate(&github_issuer(), &w2, now()).is_err());
}

#[test]
fn the_issuer_and_audience_must_be_the_rules() {
    let r = main_branch_rule();
    let mut claims = github_claims("repo:acme/deploy:ref:refs/heads/main", json!({}));
    claims.insert("aud".into(), json!(["https://other.example"]));
    assert_eq!(
        r.evaluate(&github_issuer(), &workload(&claims), now())
            .expect_err("refused")
            .reason,
        MissReason::WrongAudience
    );
    claims.insert(
        "aud".into(),
        json!(["https://other.example", "https://portcullis.example"]),
    );
    assert!(r
        .evaluate(&github_issuer(), &workload(&claims), now())
        .is_ok());
    claims.insert(
        "iss".into(),
        json!("https://token.actions.githubusercontent.com/acme"),
    );
    assert_eq!(
        r.evaluate(&github_issuer(), &workload(&claims), now())
            .expect_err("refused")
            .reason,
        MissReason::WrongIssuer
    );
}

#[test]
fn a_long_lived_subject_token_is_refused_unless_the_rule_allows_it() {
    let k8s = TrustedIssuer {
        issuer: "https://kube.internal".into(),
        preset: Preset::Kubernetes,
        algorithms: vec!["RS256".into()],
        max_token_age: Preset::Kubernetes.default_max_token_age(),
    };
    let year = 365 * 86400;
    let claims = obj(json!({
        "iss": "https://kube.internal", "sub": "system:serviceaccount:payments:api",
        "aud": ["portcullis"], "iat": NOW - 100, "exp": NOW - 100 + year,
        "kubernetes.io": {"namespace": "payments", "serviceaccount": {"name": "api", "uid": "u"}},
    }));
    let w = Workload::from_claims(Preset::Kubernetes, &claims).expect("valid");
    let mut r = TrustRule {
        issuer: "https://kube.internal".into(),
        audience: "portcullis".into(),
        ..rule(
            "payments-api",
            vec![eq("namespace", "payments"), eq("service_account", "api")],
        )
    };
    assert_eq!(r.check(&k8s), Ok(()));
    assert!(matches!(
        r.evaluate(&k8s, &w, now()).expect_err("refused").reason,
        MissReason::TokenTooLong { .. }
    ));
    r.max_token_age = Some(Duration::from_secs(year as u64));
    assert_eq!(r.evaluate(&k8s, &w, now()), Ok(()));
    // Without `iat`, the remaining life is what is bounded.
    let mut no_iat = claims.clone();
    no_iat.remove("iat");
    r.max_token_age = None;
    let w = Workload::from_claims(Preset::Kubernetes, &no_iat).expect("valid");
    assert!(r.evaluate(&k8s, &w, now()).is_err());
}

#[test]
fn shared_issuers_need_an_immutable_id_pinned_exactly() {
    let gh = github_issuer();
    assert_eq!(main_branch_rule().check(&gh), Ok(()));
    assert_eq!(
        rule("o", vec![eq("repository_owner_id", "1001")]).check(&gh),
        Ok(())
    );
    assert_eq!(
        rule(
            "o",
            vec![cond(
                "repository_id",
                Test::OneOf(vec!["1".into(), "2".into()])
            )]
        )
        .check(&gh),
        Ok(())
    );
    for unpinned in [
        vec![eq("repository_owner", "acme")],
        vec![eq("sub", "repo:acme/deploy:ref:refs/heads/main")],
        vec![cond("repository_owner_id", Test::Prefix("10".into()))],
        vec![cond(
            "repository_id",
            Test::Glob(Glob::parse("2*").expect("valid")),
        )],
        vec![cond("repository_id", Test::Exists)],
    ] {
        assert!(
            matches!(
                rule("x", unpinned.clone()).check(&gh),
                Err(RuleError::SharedIssuerUnpinned { .. })
            ),
            "{unpinned:?}"
        );
    }
    // gitlab.com, whatever preset the operator picked.
    let gl = TrustedIssuer {
        issuer: GITLAB_COM_ISSUER.into(),
        preset: Preset::GenericOidc,
        ..github_issuer()
    };
    let on_gl = |c| TrustRule {
        issuer: GITLAB_COM_ISSUER.into(),
        ..rule("gl", c)
    };
    assert!(on_gl(vec![eq("project_path", "acme/app")])
        .check(&gl)
        .is_err());
    assert_eq!(on_gl(vec![eq("project_id", "42")]).check(&gl), Ok(()));
    // A single-customer issuer needs no pin, but still at least one condition.
    let own = TrustedIssuer {
        issuer: "https://gitlab.acme.example".into(),
        preset: Preset::Gitlab,
        ..github_issuer()
    };
    let on_own = |c| TrustRule {
        issuer: "https://gitlab.acme.example".into(),
        ..rule("own", c)
    };
    assert_eq!(
        on_own(vec![eq("project_path", "acme/app")]).check(&own),
        Ok(())
    );
    assert_eq!(on_own(vec![]).check(&own), Err(RuleError::BadConditions));
}

#[test]
fn other_save_time_checks() {
    let gh = github_issuer();
    let base = main_branch_rule();
    let with = |f: &dyn Fn(&mut TrustRule)| {
        let mut r = base.clone();
        f(&mut r);
        r.check(&gh)
    };
    assert_eq!(
        with(&|r| r.issuer = "https://x".into()),
        Err(RuleError::IssuerMismatch)
    );
    assert_eq!(
        with(&|r| r.audience = String::new()),
        Err(RuleError::BadAudience)
    );
    assert_eq!(with(&|r| r.audiences.clear()), Err(RuleError::NoAudiences));
    assert_eq!(
        with(&|r| r.max_lifetime = Duration::ZERO),
        Err(RuleError::BadLifetime)
    );
    assert_eq!(
        with(&|r| r.max_lifetime = MAX_RULE_LIFETIME + Duration::from_secs(1)),
        Err(RuleError::BadLifetime)
    );
    assert_eq!(
        with(&|r| r.max_token_age = Some(Duration::ZERO)),
        Err(RuleError::BadTokenAge)
    );
    assert_eq!(
        with(&|r| r.conditions = vec![eq("repository_id", "1"); MAX_CONDITIONS + 1]),
        Err(RuleError::BadConditions)
    );
    assert!(RuleId::parse("Deploy").is_none());
    assert!(RuleId::parse("").is_none());
    assert!(RuleId::parse(&"a".repeat(65)).is_none());
}

#[test]
fn selection_is_deterministic() {
    let gh = github_issuer();
    let w = workload(&github_claims(
        "repo:acme/deploy:environment:prod",
        json!({"environment": "prod"}),
    ));
    let broad = rule("broad", vec![eq("repository_id", "2002")]);
    let env = rule(
        "env",
        vec![eq("repository_id", "2002"), eq("environment", "prod")],
    );
    let glob_env = rule(
        "glob-env",
        vec![
            eq("repository_id", "2002"),
            cond(
                "environment",
                Test::Glob(Glob::parse("pr*").expect("valid")),
            ),
        ],
    );
    let branch = rule(
        "branch",
        vec![eq("repository_id", "2002"), eq("ref", "refs/heads/main")],
    );
    let other = rule(
        "other",
        vec![eq("repository_id", "9999"), eq("environment", "prod")],
    );

    // Most specific wins, in any storage order.
    let rules = vec![broad.clone(), env.clone(), glob_env.clone(), other.clone()];
    assert_eq!(
        select_rule(&rules, &gh, &w, None, Use::Grant, now())
            .expect("valid")
            .id
            .as_str(),
        "env"
    );
    let mut rev = rules.clone();
    rev.reverse();
    assert_eq!(
        select_rule(&rev, &gh, &w, None, Use::Grant, now())
            .expect("valid")
            .id
            .as_str(),
        "env"
    );

    // Two equally specific matches are a configuration error, whatever their order.
    let tied = vec![env.clone(), branch.clone(), broad.clone()];
    let expected = SelectError::Ambiguous(
        RuleId::parse("branch").expect("valid"),
        RuleId::parse("env").expect("valid"),
    );
    assert_eq!(
        select_rule(&tied, &gh, &w, None, Use::Grant, now()),
        Err(expected.clone())
    );
    let mut tied_rev = tied.clone();
    tied_rev.reverse();
    assert_eq!(
        select_rule(&tied_rev, &gh, &w, None, Use::Grant, now()),
        Err(expected)
    );

    // Naming a rule evaluates only that rule.
    let name = RuleId::parse("branch").expect("valid");
    assert_eq!(
        select_rule(&tied, &gh, &w, Some(&name), Use::Grant, now())
            .expect("valid")
            .id,
        name
    );
    let name = RuleId::parse("other").expect("valid");
    assert!(matches!(
        select_rule(&rules, &gh, &w, Some(&name), Use::Grant, now()),
        Err(SelectError::NoMatch(m)) if m.len() == 1
    ));
    let name = RuleId::parse("nope").expect("valid");
    assert_eq!(
        select_rule(&rules, &gh, &w, Some(&name), Use::Grant, now()),
        Err(SelectError::NamedRuleUnknown)
    );

    // Nothing matches: every miss is reported for the audit log.
    let misses = match select_rule(
        std::slice::from_ref(&other),
        &gh,
        &w,
        None,
        Use::Grant,
        now(),
    ) {
        Err(SelectError::NoMatch(m)) => m,
        other => panic!("{other:?}"),
    };
    assert_eq!(misses.len(), 1);
    assert_eq!(
        misses[0].to_string(),
        "rule other: condition 0 (repository_id equals): not matched"
    );
    assert_eq!(
        select_rule(&[], &gh, &w, None, Use::Grant, now()),
        Err(SelectError::NoRules)
    );
}

#[test]
fn issued_lifetime_is_the_smallest_bound() {
    let w = workload(&github_claims(
        "repo:acme/deploy:ref:refs/heads/main",
        json!({}),
    ));
    let mut r = main_branch_rule();
    let cap = Duration::from_secs(3600);
    assert_eq!(
        issued_lifetime(&r, cap, &w, now()),
        Duration::from_secs(900)
    );
    assert_eq!(
        issued_lifetime(&r, Duration::from_secs(60), &w, now()),
        Duration::from_secs(60)
    );
    r.bound_to_subject_lifetime = true;
    // The subject token has 300 s left.
    assert_eq!(
        issued_lifetime(&r, cap, &w, now()),
        Duration::from_secs(300)
    );
    let later = Timestamp::from_secs(NOW + 1000);
    assert_eq!(issued_lifetime(&r, cap, &w, later), Duration::ZERO);
    assert!(decide_grant(&r, None, &[], None, Duration::ZERO).is_err());
}

#[test]
fn the_grant_stays_within_the_rule() {
    let r = main_branch_rule();
    let life = Duration::from_secs(600);
    let d = decide_grant(&r, None, &[], None, life).expect("valid");
    assert_eq!(d.audience.as_str(), "deploy-api");
    assert_eq!(d.scopes.to_delimited(), "deploy read");
    assert_eq!(d.lifetime, life);

    let d = decide_grant(&r, Some("read"), &["artifacts"], None, life).expect("valid");
    assert_eq!(d.audience.as_str(), "artifacts");
    assert_eq!(d.scopes.to_delimited(), "read");

    assert_eq!(
        decide_grant(&r, Some("read admin"), &[], None, life),
        Err(GrantError::InvalidScope)
    );
    assert_eq!(
        decide_grant(&r, None, &["billing"], None, life),
        Err(GrantError::InvalidTarget)
    );
    assert_eq!(
        decide_grant(&r, None, &["deploy-api", "artifacts"], None, life),
        Err(GrantError::InvalidTarget)
    );
    // The resource's scopes narrow what the rule grants.
    let resource = ScopeSet::parse_delimited("read").expect("valid");
    let d = decide_grant(&r, None, &[], Some(&resource), life).expect("valid");
    assert_eq!(d.scopes.to_delimited(), "read");
    assert_eq!(
        decide_grant(&r, Some("deploy"), &[], Some(&resource), life),
        Err(GrantError::InvalidScope)
    );
}

/// A rule bound to a client serves only that client's authentication, an unbound one only the
/// grants: binding never opens a grant, and a token admitted for one client never
/// authenticates another.
#[test]
fn a_rule_serves_one_use() {
    let gh = github_issuer();
    let w = workload(&github_claims(
        "repo:acme/deploy:environment:prod",
        json!({"environment": "prod"}),
    ));
    let grant = rule("grant", vec![eq("repository_id", "2002")]);
    let mut bound = rule("bound", vec![eq("repository_id", "2002")]);
    bound.client_id = Some("cl_a".into());
    let rules = vec![grant.clone(), bound.clone()];
    let pick = |purpose| select_rule(&rules, &gh, &w, None, purpose, now()).map(|r| r.id.clone());
    assert_eq!(pick(Use::Grant), Ok(grant.id.clone()));
    assert_eq!(
        pick(Use::ClientAuthentication("cl_a")),
        Ok(bound.id.clone())
    );
    assert_eq!(
        pick(Use::ClientAuthentication("cl_b")),
        Err(SelectError::NoRules)
    );
    // Naming a bound rule in a grant finds nothing.
    assert_eq!(
        select_rule(&rules, &gh, &w, Some(&bound.id), Use::Grant, now()),
        Err(SelectError::NamedRuleUnknown)
    );
    assert!(!bound.serves(Use::Grant));
    assert!(!grant.serves(Use::ClientAuthentication("cl_a")));
}

/// A bound rule's audience must be one a client assertion may name here; an unbound rule's
/// audience is free.
#[test]
fn a_bound_rule_names_this_server_as_its_audience() {
    let here = ["https://auth.example", "https://auth.example/oauth2/token"];
    let mut r = rule("bound", vec![eq("repository_id", "2002")]);
    assert_eq!(r.check_client_binding(&here), Ok(()));
    r.client_id = Some("cl_a".into());
    assert!(matches!(
        r.check_client_binding(&here),
        Err(RuleError::ClientRuleAudience { .. })
    ));
    r.audience = here[1].into();
    assert_eq!(r.check_client_binding(&here), Ok(()));
    r.client_id = Some(String::new());
    assert_eq!(r.check_client_binding(&here), Err(RuleError::BadClientId));
}
