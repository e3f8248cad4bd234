//! The route table: compiled from `[[routes]]`, matched against the host, the *normalised* path
//! ([`crate::path`]) and the method of each request.
//!
//! A pattern is a list of segments: literals (compared exactly, case-sensitive), `{name}` (any
//! one segment, captured) and, last only, `*` (zero or more further segments: `/public/*`
//! matches `/public`, `/public/` and `/public/a/b`). When several routes match, the most
//! specific wins: a route naming a host over one that does not, then more literal segments,
//! then an exact pattern over a `*` one, then more segments, then a route naming methods; equal
//! routes are refused at load. A request that no route matches is answered 404.
//!
//! Every route carries an [`Access`]: `Public`, or `Protected` with a verify-library
//! [`Policy`]. There is no third state: a route without one is refused at load. This module
//! must never let an unmatched request through.

use std::sync::Arc;

use http::Method;
use portcullis_core::credential::Environment;
use portcullis_core::tenant::TenantId;
use portcullis_verify::{Policy, Requirement, TenantBinding};

use crate::config::{ClientCertMode, ConfigError, CredentialKindName, RouteSection};
use crate::path::NormalPath;
use crate::ratelimit::RateLimiter;

/// Reserved for the gateway's own endpoints (forward-auth); no route may use it.
pub const RESERVED_PREFIX: &str = "_portcullis";

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Lit(String),
    Param(String),
}

/// What a route demands of a request.
#[derive(Debug, Clone)]
pub enum Access {
    /// Explicitly open: no credential is checked (one that is sent is not forwarded unless
    /// `forward_authorization`).
    Public,
    Protected(Policy),
}

#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    host: Option<String>,
    pattern: Vec<Seg>,
    wildcard: bool,
    methods: Option<Vec<Method>>,
    pub upstream: Option<String>,
    pub access: Access,
    pub forward_authorization: bool,
    /// HTTP/1.1 upgrades (WebSocket) are passed through to the upstream.
    pub websocket: bool,
    pub rate_limit: Option<RateLimiter>,
    /// Whether a verified client certificate is required (checked before the credential).
    pub client_cert: ClientCertMode,
}

/// A matched route and the parameters it captured.
#[derive(Debug)]
pub struct Matched<'a> {
    pub route: &'a Route,
    pub params: Vec<(&'a str, &'a str)>,
}

impl Matched<'_> {
    /// The resource's tenant as the route's binding finds it; `None` when absent or not a
    /// valid tenant id (a bound policy then refuses).
    pub fn resource_tenant(&self, headers: &http::HeaderMap) -> Option<TenantId> {
        let Access::Protected(policy) = &self.route.access else {
            return None;
        };
        match &policy.tenant {
            TenantBinding::Unbound => None,
            TenantBinding::PathParam(name) => self
                .params
                .iter()
                .find(|(k, _)| k == name)
                .and_then(|(_, v)| TenantId::parse(v).ok()),
            TenantBinding::Header(h) => {
                let mut values = headers.get_all(h.as_str()).iter();
                match (values.next(), values.next()) {
                    // Two values is ambiguous: refuse rather than pick one.
                    (Some(v), None) => v.to_str().ok().and_then(|v| TenantId::parse(v).ok()),
                    _ => None,
                }
            }
        }
    }
}

impl Route {
    fn specificity(&self) -> (bool, usize, bool, usize, bool) {
        let literals = self
            .pattern
            .iter()
            .filter(|s| matches!(s, Seg::Lit(_)))
            .count();
        (
            self.host.is_some(),
            literals,
            !self.wildcard,
            self.pattern.len(),
            self.methods.is_some(),
        )
    }

    fn matches<'a>(
        &'a self,
        host: Option<&str>,
        path: &'a NormalPath,
        method: &Method,
    ) -> Option<Vec<(&'a str, &'a str)>> {
        if let Some(want) = &self.host {
            if host.is_none_or(|h| !h.eq_ignore_ascii_case(want)) {
                return None;
            }
        }
        if let Some(methods) = &self.methods {
            if !methods.contains(method) {
                return None;
            }
        }
        let n = self.pattern.len();
        if path.segments.len() < n || (!self.wildcard && path.segments.len() != n) {
            return None;
        }
        let mut params = Vec::new();
        for (seg, got) in self.pattern.iter().zip(&path.segments) {
            match seg {
                Seg::Lit(l) if l == got => {}
                Seg::Lit(_) => return None,
                Seg::Param(name) => params.push((name.as_str(), got.as_str())),
            }
        }
        Some(params)
    }
}

#[derive(Debug, Default)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// The most specific route matching the request, if any (module docs).
    pub fn find<'a>(
        &'a self,
        host: Option<&str>,
        path: &'a NormalPath,
        method: &Method,
    ) -> Option<Matched<'a>> {
        let mut best: Option<Matched<'a>> = None;
        for r in &self.routes {
            let Some(params) = r.matches(host, path, method) else {
                continue;
            };
            let better = match &best {
                None => true,
                Some(b) => r.specificity() > b.route.specificity(),
            };
            if better {
                best = Some(Matched { route: r, params });
            }
        }
        best
    }

    pub fn compile(
        sections: &[RouteSection],
        upstream_exists: impl Fn(&str) -> bool,
    ) -> Result<Self, ConfigError> {
        let mut routes: Vec<Route> = Vec::new();
        for (index, s) in sections.iter().enumerate() {
            let r = compile_route(index, s, &upstream_exists)?;
            for other in &routes {
                if same_requests(other, &r) {
                    return Err(ConfigError(format!(
                        "routes {} and {} match the same requests",
                        other.name, r.name
                    )));
                }
                if other.name == r.name {
                    return Err(ConfigError(format!("route name {} is used twice", r.name)));
                }
            }
            routes.push(r);
        }
        Ok(Self { routes })
    }
}

fn same_requests(a: &Route, b: &Route) -> bool {
    let shape = |r: &Route| -> Vec<Option<String>> {
        r.pattern
            .iter()
            .map(|s| match s {
                Seg::Lit(l) => Some(l.clone()),
                Seg::Param(_) => None,
            })
            .collect()
    };
    let methods_overlap = match (&a.methods, &b.methods) {
        (Some(x), Some(y)) => x.iter().any(|m| y.contains(m)),
        _ => a.methods.is_none() && b.methods.is_none(),
    };
    a.host == b.host && a.wildcard == b.wildcard && shape(a) == shape(b) && methods_overlap
}

fn err<T>(route: &str, msg: impl std::fmt::Display) -> Result<T, ConfigError> {
    Err(ConfigError(format!("route {route}: {msg}")))
}

fn compile_route(
    index: usize,
    s: &RouteSection,
    upstream_exists: &impl Fn(&str) -> bool,
) -> Result<Route, ConfigError> {
    let name: Arc<str> = s
        .name
        .clone()
        .unwrap_or_else(|| format!("route{index}"))
        .into();
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        || name.is_empty()
    {
        return err(&name, "name may only hold letters, digits, '-', '_', '.'");
    }
    let (pattern, wildcard) = parse_pattern(&s.path).or_else(|e| err(&name, e))?;
    if matches!(pattern.first(), Some(Seg::Lit(l)) if l == RESERVED_PREFIX) {
        return err(&name, format!("/{RESERVED_PREFIX} is reserved"));
    }
    let methods = match &s.methods {
        None => None,
        Some(ms) if ms.is_empty() => return err(&name, "methods is empty"),
        Some(ms) => Some(
            ms.iter()
                .map(|m| {
                    Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                        .or_else(|_| err(&name, format!("bad method {m}")))
                })
                .collect::<Result<Vec<_>, _>>()?,
        ),
    };
    if let Some(u) = &s.upstream {
        if !upstream_exists(u) {
            return err(&name, format!("upstream {u} is not defined"));
        }
    }
    let has_policy_keys = s.scopes_all.is_some()
        || s.scopes_any.is_some()
        || s.roles_all.is_some()
        || s.roles_any.is_some()
        || s.tenant_from_path.is_some()
        || s.tenant_from_header.is_some()
        || s.audience.is_some()
        || s.api_key_environment.is_some();
    let access = match (&s.accept, s.public) {
        (Some(_), true) => return err(&name, "accept and public = true are exclusive"),
        (None, false) => {
            return err(
                &name,
                "no policy: set accept = [\"access_token\", \"api_key\"] or public = true",
            )
        }
        (None, true) if has_policy_keys => return err(
            &name,
            "a public route cannot require scopes, roles, a tenant, an audience or an environment",
        ),
        (None, true) => Access::Public,
        (Some(kinds), false) => {
            if kinds.is_empty() {
                return err(&name, "accept is empty");
            }
            let mut p = Policy::access_token();
            p.accept_access_tokens = kinds.contains(&CredentialKindName::AccessToken);
            p.accept_api_keys = kinds.contains(&CredentialKindName::ApiKey);
            p.scopes = requirement(&name, "scopes", &s.scopes_all, &s.scopes_any)?;
            p.roles = requirement(&name, "roles", &s.roles_all, &s.roles_any)?;
            p.tenant = match (&s.tenant_from_path, &s.tenant_from_header) {
                (Some(_), Some(_)) => {
                    return err(
                        &name,
                        "tenant_from_path and tenant_from_header are exclusive",
                    )
                }
                (Some(param), None) => {
                    if !pattern.contains(&Seg::Param(param.clone())) {
                        return err(&name, format!("path has no {{{param}}} for the tenant"));
                    }
                    TenantBinding::PathParam(param.clone())
                }
                (None, Some(h)) => {
                    if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                        return err(&name, "tenant_from_header is not a header name");
                    }
                    TenantBinding::Header(h.to_ascii_lowercase())
                }
                (None, None) => TenantBinding::Unbound,
            };
            if let Some(audience) = &s.audience {
                if audience.trim().is_empty() || audience.trim() != audience {
                    return err(
                        &name,
                        "audience must be a non-empty string without spaces around it",
                    );
                }
                p = p.audience(audience.clone());
            }
            if let Some(env) = &s.api_key_environment {
                if !p.accept_api_keys {
                    return err(
                        &name,
                        "api_key_environment on a route that does not accept api_key",
                    );
                }
                let Ok(env) = Environment::parse(env) else {
                    return err(
                        &name,
                        "api_key_environment must be a lowercase slug (live, test, ...)",
                    );
                };
                p = p.api_key_environment(env);
            }
            Access::Protected(p)
        }
    };
    let rate_limit = match s.rate_limit {
        None => None,
        Some(r) => {
            if !(r.per_second.is_finite() && r.per_second > 0.0) {
                return err(&name, "rate_limit.per_second must be positive");
            }
            let burst = r.burst.unwrap_or(r.per_second);
            if !(burst.is_finite() && burst > 0.0) {
                return err(&name, "rate_limit.burst must be positive");
            }
            let Some(limiter) = RateLimiter::new(r.per_second, burst) else {
                return err(&name, "rate_limit is out of range");
            };
            Some(limiter)
        }
    };
    Ok(Route {
        name,
        host: s.host.as_ref().map(|h| h.to_ascii_lowercase()),
        pattern,
        wildcard,
        methods,
        upstream: s.upstream.clone(),
        access,
        forward_authorization: s.forward_authorization,
        websocket: s.websocket,
        rate_limit,
        client_cert: s.client_cert,
    })
}

fn requirement(
    route: &str,
    what: &str,
    all: &Option<Vec<String>>,
    any: &Option<Vec<String>>,
) -> Result<Requirement, ConfigError> {
    match (all, any) {
        (Some(_), Some(_)) => err(route, format!("{what}_all and {what}_any are exclusive")),
        (Some(v), None) | (None, Some(v)) if v.is_empty() => {
            err(route, format!("{what} list is empty"))
        }
        (Some(v), None) => Ok(Requirement::All(v.clone())),
        (None, Some(v)) => Ok(Requirement::Any(v.clone())),
        (None, None) => Ok(Requirement::None),
    }
}

fn parse_pattern(p: &str) -> Result<(Vec<Seg>, bool), String> {
    let Some(rest) = p.strip_prefix('/') else {
        return Err("path must start with /".into());
    };
    let mut segs = Vec::new();
    let mut wildcard = false;
    let parts: Vec<&str> = if rest.is_empty() {
        Vec::new()
    } else {
        rest.split('/').collect()
    };
    for (i, part) in parts.iter().enumerate() {
        if *part == "*" {
            if i + 1 != parts.len() {
                return Err("* may only be the last segment".into());
            }
            wildcard = true;
        } else if let Some(name) = part.strip_prefix('{').and_then(|n| n.strip_suffix('}')) {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                return Err(format!("bad parameter {part}"));
            }
            if segs.contains(&Seg::Param(name.to_owned())) {
                return Err(format!("parameter {part} is used twice"));
            }
            segs.push(Seg::Param(name.to_owned()));
        } else {
            // A literal must already be in normalised form, or no request could match it.
            // Under the strictest rules: a literal they refuse could never be matched.
            let normal = crate::path::normalize(&format!("/{part}"), crate::path::Rules::default())
                .map_err(|e| format!("segment {part:?}: {e}"))?;
            if normal.segments.len() != 1 || normal.segments[0] != *part || part.contains('{') {
                return Err(format!(
                    "segment {part:?} is not in normalised form (no empty, '.', '..' or escaped unreserved characters)"
                ));
            }
            segs.push(Seg::Lit((*part).to_owned()));
        }
    }
    Ok((segs, wildcard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::path::{normalize, Rules};

    fn section(path: &str) -> RouteSection {
        RouteSection {
            name: None,
            host: None,
            path: path.into(),
            methods: None,
            upstream: None,
            accept: Some(vec![CredentialKindName::AccessToken]),
            public: false,
            scopes_all: None,
            scopes_any: None,
            roles_all: None,
            roles_any: None,
            tenant_from_path: None,
            tenant_from_header: None,
            audience: None,
            api_key_environment: None,
            forward_authorization: false,
            websocket: false,
            rate_limit: None,
            client_cert: ClientCertMode::Optional,
        }
    }

    fn table(sections: Vec<RouteSection>) -> RouteTable {
        RouteTable::compile(&sections, |_| true).expect("compile")
    }

    fn find(t: &RouteTable, host: Option<&str>, method: Method, path: &str) -> Option<String> {
        let p = normalize(path, Rules::default()).ok()?;
        t.find(host, &p, &method).map(|m| m.route.name.to_string())
    }

    #[test]
    fn a_route_without_a_policy_is_refused() {
        let mut s = section("/a");
        s.accept = None;
        let e = RouteTable::compile(&[s], |_| true).expect_err("refused");
        assert!(e.0.contains("no policy"), "{e}");
        let mut s = section("/a");
        s.accept = Some(vec![]);
        assert!(RouteTable::compile(&[s], |_| true).is_err());
        let mut s = section("/a");
        s.public = true;
        assert!(
            RouteTable::compile(&[s], |_| true).is_err(),
            "accept and public"
        );
        let mut s = section("/a");
        s.accept = None;
        s.public = true;
        s.scopes_all = Some(vec!["x".into()]);
        assert!(
            RouteTable::compile(&[s], |_| true).is_err(),
            "public with scopes"
        );
    }

    #[test]
    fn bad_patterns_and_references_are_refused() {
        for p in [
            "a",
            "/a/*/b",
            "/a/{}",
            "/a/{t}/{t}",
            "/a/../b",
            "/a//b",
            "/%61",
            "/_portcullis/x",
            "/a;b",
            "/admin.",
        ] {
            assert!(RouteTable::compile(&[section(p)], |_| true).is_err(), "{p}");
        }
        let mut s = section("/t/{tenant}");
        s.tenant_from_path = Some("tenantx".into());
        assert!(RouteTable::compile(&[s], |_| true).is_err());
        let mut s = section("/a");
        s.upstream = Some("nope".into());
        assert!(RouteTable::compile(&[s], |u| u == "yes").is_err());
        assert!(RouteTable::compile(&[section("/a/{x}"), section("/a/{y}")], |_| true).is_err());
    }

    #[test]
    fn most_specific_route_wins() {
        let mut public = section("/*");
        public.name = Some("catchall".into());
        let mut admin = section("/admin/*");
        admin.name = Some("admin".into());
        let mut item = section("/items/{id}");
        item.name = Some("item".into());
        let mut item_get = section("/items/{id}");
        item_get.name = Some("item_get".into());
        item_get.methods = Some(vec!["GET".into()]);
        let mut hosted = section("/admin/*");
        hosted.name = Some("hosted".into());
        hosted.host = Some("Admin.Example.com".into());
        let t = table(vec![public, admin, item, item_get, hosted]);
        assert_eq!(
            find(&t, None, Method::GET, "/admin/x").as_deref(),
            Some("admin")
        );
        assert_eq!(
            find(&t, None, Method::GET, "/admin").as_deref(),
            Some("admin")
        );
        assert_eq!(
            find(&t, Some("admin.example.com"), Method::GET, "/admin").as_deref(),
            Some("hosted")
        );
        assert_eq!(
            find(&t, None, Method::GET, "/public/../admin").as_deref(),
            Some("admin")
        );
        assert_eq!(
            find(&t, None, Method::GET, "/ADMIN").as_deref(),
            Some("catchall")
        );
        assert_eq!(
            find(&t, None, Method::GET, "/items/1").as_deref(),
            Some("item_get")
        );
        assert_eq!(
            find(&t, None, Method::POST, "/items/1").as_deref(),
            Some("item")
        );
        assert_eq!(
            find(&t, None, Method::GET, "/items/1/2").as_deref(),
            Some("catchall")
        );
    }

    #[test]
    fn unmatched_is_none() {
        let t = table(vec![section("/a/{x}"), section("/b/*")]);
        assert_eq!(find(&t, None, Method::GET, "/a"), None);
        assert_eq!(find(&t, None, Method::GET, "/a/1/2"), None);
        assert_eq!(find(&t, None, Method::GET, "/c"), None);
        assert_eq!(find(&t, None, Method::GET, "/bb"), None);
        assert!(find(&t, None, Method::GET, "/b").is_some());
    }
}
