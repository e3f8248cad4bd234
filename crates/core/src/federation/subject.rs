//! Platform subjects split into fields, so rules are written on `repository_id`, `ref`,
//! `environment`, `namespace` or `service_account` instead of string patterns over `sub`.
//!
//! Each parser is strict: a subject that does not have the platform's documented shape is
//! refused rather than partly read (the token is then unusable, never half-trusted). Values
//! that may not contain `:` on the platform (git refs, group paths, Kubernetes names) are
//! split on it; a value that does contain one makes the subject unreadable.
//!
//! Must never: trust a name where the platform also gives an id; the parsers only read, and
//! [`super::claims::Workload`] refuses a token whose subject disagrees with its claims.

use serde_json::{Map, Value};

use super::claims::WorkloadError;

/// Derived `(field, value)` pairs.
pub type Fields = Vec<(&'static str, String)>;

fn bad() -> WorkloadError {
    WorkloadError::BadSubject
}

fn nonempty(s: &str) -> Result<String, WorkloadError> {
    if s.is_empty() {
        Err(bad())
    } else {
        Ok(s.to_owned())
    }
}

/// A name with an optional `@id` suffix (GitHub's immutable subject form): the id is digits.
fn name_and_id(s: &str) -> Result<(String, Option<String>), WorkloadError> {
    match s.split_once('@') {
        None => Ok((nonempty(s)?, None)),
        Some((name, id)) if !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()) => {
            Ok((nonempty(name)?, Some(id.to_owned())))
        }
        Some(_) => Err(bad()),
    }
}

/// GitHub Actions: `repo:OWNER/NAME:<context>` where the context is `environment:ENV`,
/// `ref:REF` or `pull_request`; in the immutable form the owner and name carry `@ID`
/// (`repo:octo@123/app@456:ref:refs/heads/main`). A customised subject made of further
/// `key:value` pairs after the repository is read pair by pair. A subject that does not start
/// with `repo:` (a template without the repository) derives nothing: rules then test the
/// token's own claims.
pub fn github(sub: &str) -> Result<Fields, WorkloadError> {
    let Some(rest) = sub.strip_prefix("repo:") else {
        return Ok(Vec::new());
    };
    let mut parts = rest.split(':');
    let repo = parts.next().ok_or_else(bad)?;
    let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
    let (owner, owner_id) = name_and_id(owner)?;
    let (name, repo_id) = name_and_id(name)?;
    if name.contains('/') {
        return Err(bad());
    }
    let mut out: Fields = vec![
        ("repository_owner", owner.clone()),
        ("repository", format!("{owner}/{name}")),
    ];
    if let Some(id) = owner_id {
        out.push(("repository_owner_id", id));
    }
    if let Some(id) = repo_id {
        out.push(("repository_id", id));
    }
    let mut context = None;
    while let Some(key) = parts.next() {
        let field = match key {
            "pull_request" => {
                context = context.or(Some("pull_request"));
                continue;
            }
            "environment" => "environment",
            "ref" => "ref",
            "ref_type" => "ref_type",
            "job_workflow_ref" => "job_workflow_ref",
            "workflow_ref" => "workflow_ref",
            "event_name" => "event_name",
            "repository_owner_id" => "repository_owner_id",
            "repository_id" => "repository_id",
            "repository_visibility" => "repository_visibility",
            "actor_id" => "actor_id",
            _ => return Err(bad()),
        };
        let value = nonempty(parts.next().ok_or_else(bad)?)?;
        if matches!(field, "environment" | "ref") {
            context = context.or(Some(field));
        }
        out.push((field, value));
    }
    out.push(("subject_context", context.ok_or_else(bad)?.to_owned()));
    Ok(out)
}

/// GitLab: `project_path:GROUP/PROJECT:ref_type:branch|tag:ref:REF`.
pub fn gitlab(sub: &str) -> Result<Fields, WorkloadError> {
    let parts: Vec<&str> = sub.split(':').collect();
    match parts.as_slice() {
        ["project_path", path, "ref_type", ref_type @ ("branch" | "tag"), "ref", r] => {
            if !path.contains('/') || path.starts_with('/') || path.ends_with('/') {
                return Err(bad());
            }
            Ok(vec![
                ("project_path", nonempty(path)?),
                ("ref_type", (*ref_type).to_owned()),
                ("ref", nonempty(r)?),
            ])
        }
        _ => Err(bad()),
    }
}

/// Kubernetes service-account tokens: `system:serviceaccount:NAMESPACE:NAME`, and the nested
/// `kubernetes.io` claim (`namespace`, `serviceaccount`, `pod`, `node`, each with `name` and
/// `uid`) flattened to `namespace`, `service_account`, `service_account_uid`, `pod`, `pod_uid`,
/// `node`, `node_uid`.
pub fn kubernetes(sub: &str, claims: &Map<String, Value>) -> Result<Fields, WorkloadError> {
    let parts: Vec<&str> = sub.split(':').collect();
    let (ns, sa) = match parts.as_slice() {
        ["system", "serviceaccount", ns, sa] => (nonempty(ns)?, nonempty(sa)?),
        _ => return Err(bad()),
    };
    let mut out: Fields = vec![("namespace", ns.clone()), ("service_account", sa.clone())];
    let Some(k8s) = claims.get("kubernetes.io") else {
        return Ok(out);
    };
    let k8s = k8s.as_object().ok_or_else(bad)?;
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    if let Some(n) = k8s.get("namespace") {
        if text(Some(n)).as_deref() != Some(ns.as_str()) {
            return Err(WorkloadError::Conflict("namespace".into()));
        }
    }
    for (key, name_field, uid_field) in [
        ("serviceaccount", "service_account", "service_account_uid"),
        ("pod", "pod", "pod_uid"),
        ("node", "node", "node_uid"),
    ] {
        let Some(obj) = k8s.get(key) else { continue };
        let obj = obj.as_object().ok_or_else(bad)?;
        if let Some(name) = text(obj.get("name")) {
            if key == "serviceaccount" {
                if name != sa {
                    return Err(WorkloadError::Conflict("service_account".into()));
                }
            } else {
                out.push((name_field, name));
            }
        }
        if let Some(uid) = text(obj.get("uid")) {
            out.push((uid_field, uid));
        }
    }
    Ok(out)
}

/// SPIFFE ids: `spiffe://TRUST-DOMAIN/PATH`, read as the SPIFFE id standard writes them (a
/// lower-case trust domain of letters, digits, `.`, `-`, `_`; path segments of letters,
/// digits, `.`, `-`, `_`, none empty, `.` or `..`; no port, user, query or fragment). Fields:
/// `trust_domain`, `spiffe_path` (with its leading `/`).
pub fn spiffe(sub: &str) -> Result<Fields, WorkloadError> {
    let rest = sub.strip_prefix("spiffe://").ok_or_else(bad)?;
    if sub.len() > 2048 {
        return Err(bad());
    }
    let (td, path) = match rest.find('/') {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let td_ok = !td.is_empty()
        && td
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b));
    if !td_ok {
        return Err(bad());
    }
    if !path.is_empty() {
        for seg in path[1..].split('/') {
            let ok = !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b));
            if !ok {
                return Err(bad());
            }
        }
    }
    Ok(vec![
        ("trust_domain", td.to_owned()),
        ("spiffe_path", path.to_owned()),
    ])
}

/// Buildkite: `organization:ORG:pipeline:PIPELINE:ref:REF:commit:SHA:step:STEP`, read as
/// `organization_slug`, `pipeline_slug`, `ref`, `build_commit`, `step_key` (the step key is
/// last and may contain `:`).
pub fn buildkite(sub: &str) -> Result<Fields, WorkloadError> {
    let mut out = Fields::new();
    let mut rest = sub;
    for (key, field) in [
        ("organization", "organization_slug"),
        ("pipeline", "pipeline_slug"),
        ("ref", "ref"),
        ("commit", "build_commit"),
    ] {
        let (k, r) = rest.split_once(':').ok_or_else(bad)?;
        let (v, r) = r.split_once(':').ok_or_else(bad)?;
        if k != key {
            return Err(bad());
        }
        out.push((field, nonempty(v)?));
        rest = r;
    }
    let step = rest.strip_prefix("step:").ok_or_else(bad)?;
    out.push(("step_key", nonempty(step)?));
    Ok(out)
}

/// CircleCI: `org/ORG_ID/project/PROJECT_ID/user/USER_ID`, read as `org_id`, `project_id`,
/// `user_id` (each a UUID, checked for shape only).
pub fn circleci(sub: &str) -> Result<Fields, WorkloadError> {
    let parts: Vec<&str> = sub.split('/').collect();
    let id = |s: &str| -> Result<String, WorkloadError> {
        let ok = s.len() == 36 && s.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-');
        ok.then(|| s.to_owned()).ok_or_else(bad)
    };
    match parts.as_slice() {
        ["org", org, "project", project, "user", user] => Ok(vec![
            ("org_id", id(org)?),
            ("project_id", id(project)?),
            ("user_id", id(user)?),
        ]),
        _ => Err(bad()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn get<'a>(f: &'a Fields, k: &str) -> Option<&'a str> {
        f.iter().find(|(n, _)| *n == k).map(|(_, v)| v.as_str())
    }

    #[test]
    fn github_subjects_in_every_documented_shape() {
        let env = github("repo:octo-org/octo-repo:environment:prod").expect("valid");
        assert_eq!(get(&env, "repository"), Some("octo-org/octo-repo"));
        assert_eq!(get(&env, "repository_owner"), Some("octo-org"));
        assert_eq!(get(&env, "environment"), Some("prod"));
        assert_eq!(get(&env, "subject_context"), Some("environment"));
        assert_eq!(get(&env, "repository_id"), None);

        let main = github("repo:octo-org/octo-repo:ref:refs/heads/main").expect("valid");
        assert_eq!(get(&main, "ref"), Some("refs/heads/main"));
        assert_eq!(get(&main, "subject_context"), Some("ref"));

        let tag = github("repo:octo-org/octo-repo:ref:refs/tags/v1.2").expect("valid");
        assert_eq!(get(&tag, "ref"), Some("refs/tags/v1.2"));

        let pr = github("repo:octo-org/octo-repo:pull_request").expect("valid");
        assert_eq!(get(&pr, "subject_context"), Some("pull_request"));
        assert_eq!(get(&pr, "ref"), None);

        let immutable =
            github("repo:octocat@123456/my-repo@456789:ref:refs/heads/main").expect("valid");
        assert_eq!(get(&immutable, "repository_owner"), Some("octocat"));
        assert_eq!(get(&immutable, "repository_owner_id"), Some("123456"));
        assert_eq!(get(&immutable, "repository"), Some("octocat/my-repo"));
        assert_eq!(get(&immutable, "repository_id"), Some("456789"));

        let custom =
            github("repo:octo-org/app:environment:prod:job_workflow_ref:octo-org/wf/.github/workflows/d.yml@refs/heads/main")
                .expect("valid");
        assert_eq!(
            get(&custom, "job_workflow_ref"),
            Some("octo-org/wf/.github/workflows/d.yml@refs/heads/main")
        );
        // A template without the repository derives nothing.
        assert_eq!(
            github("repository_owner_id:1:context:x").expect("valid"),
            vec![]
        );
    }

    #[test]
    fn malformed_github_subjects_are_refused() {
        for s in [
            "repo:",
            "repo:octo-org",
            "repo:octo-org/app",
            "repo:/app:ref:refs/heads/main",
            "repo:octo-org/:ref:refs/heads/main",
            "repo:octo-org/app/x:ref:refs/heads/main",
            "repo:octo@abc/app:ref:refs/heads/main",
            "repo:octo@/app:ref:refs/heads/main",
            "repo:octo-org/app:ref:",
            "repo:octo-org/app:ref",
            "repo:octo-org/app:bogus:x",
            "repo:octo-org/app:environment:a:b",
        ] {
            assert_eq!(github(s), Err(WorkloadError::BadSubject), "{s}");
        }
    }

    #[test]
    fn gitlab_subjects() {
        let f = gitlab("project_path:group/sub/project:ref_type:branch:ref:main").expect("valid");
        assert_eq!(get(&f, "project_path"), Some("group/sub/project"));
        assert_eq!(get(&f, "ref_type"), Some("branch"));
        assert_eq!(get(&f, "ref"), Some("main"));
        for s in [
            "project_path:group/p:ref_type:merge:ref:main",
            "project_path:nogroup:ref_type:branch:ref:main",
            "project_path:group/p:ref_type:branch:ref:",
            "project_path:group/p:ref_type:branch:ref:a:b",
            "group/p",
        ] {
            assert!(gitlab(s).is_err(), "{s}");
        }
    }

    #[test]
    fn kubernetes_subjects_and_the_nested_claim() {
        let claims = json!({"kubernetes.io": {
            "namespace": "payments",
            "serviceaccount": {"name": "api", "uid": "sa-uid"},
            "pod": {"name": "api-7d9", "uid": "pod-uid"},
        }});
        let m = claims.as_object().expect("valid");
        let f = kubernetes("system:serviceaccount:payments:api", m).expect("valid");
        assert_eq!(get(&f, "namespace"), Some("payments"));
        assert_eq!(get(&f, "service_account"), Some("api"));
        assert_eq!(get(&f, "service_account_uid"), Some("sa-uid"));
        assert_eq!(get(&f, "pod"), Some("api-7d9"));
        assert_eq!(get(&f, "pod_uid"), Some("pod-uid"));
        // The nested claim must agree with the subject.
        assert_eq!(
            kubernetes("system:serviceaccount:other:api", m),
            Err(WorkloadError::Conflict("namespace".into()))
        );
        assert_eq!(
            kubernetes("system:serviceaccount:payments:admin", m),
            Err(WorkloadError::Conflict("service_account".into()))
        );
        for s in [
            "system:serviceaccount:payments",
            "system:serviceaccount:payments:api:x",
            "system:node:payments:api",
            "system:serviceaccount::api",
        ] {
            assert!(kubernetes(s, &Map::new()).is_err(), "{s}");
        }
    }

    #[test]
    fn spiffe_ids() {
        let f = spiffe("spiffe://prod.example.org/ns/payments/sa/api").expect("valid");
        assert_eq!(get(&f, "trust_domain"), Some("prod.example.org"));
        assert_eq!(get(&f, "spiffe_path"), Some("/ns/payments/sa/api"));
        assert_eq!(
            get(
                &spiffe("spiffe://example.org").expect("valid"),
                "spiffe_path"
            ),
            Some("")
        );
        for s in [
            "spiffe://Example.org/a",
            "spiffe://example.org:443/a",
            "spiffe://user@example.org/a",
            "spiffe://example.org/a//b",
            "spiffe://example.org/a/../b",
            "spiffe://example.org/a/",
            "spiffe://example.org/a?x=1",
            "spiffe://",
            "https://example.org/a",
        ] {
            assert!(spiffe(s).is_err(), "{s}");
        }
    }

    #[test]
    fn buildkite_and_circleci_subjects() {
        let f = buildkite(
            "organization:acme:pipeline:deploy:ref:refs/heads/main:commit:abc123:step:build:linux",
        )
        .expect("valid");
        assert_eq!(get(&f, "organization_slug"), Some("acme"));
        assert_eq!(get(&f, "pipeline_slug"), Some("deploy"));
        assert_eq!(get(&f, "ref"), Some("refs/heads/main"));
        assert_eq!(get(&f, "step_key"), Some("build:linux"));
        assert!(buildkite("organization:acme:pipeline:deploy").is_err());
        assert!(buildkite("pipeline:deploy:organization:acme:ref:r:commit:c:step:s").is_err());

        let org = "01234567-89ab-cdef-0123-456789abcdef";
        let f = circleci(&format!("org/{org}/project/{org}/user/{org}")).expect("valid");
        assert_eq!(get(&f, "org_id"), Some(org));
        assert!(circleci(&format!("org/{org}/project/x/user/{org}")).is_err());
        assert!(circleci("org/a/project/b").is_err());
    }
}
