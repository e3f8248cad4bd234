//! What the token endpoint issues to a user's app (the `authorization_code` and `refresh_token`
//! grants) and what the userinfo endpoint tells it: the grant decisions, the claims of RFC 9068
//! user access tokens and of OpenID Connect ID tokens, and the userinfo claims chosen by scope.
//!
//! The rules: a grant the client is not registered for is `unauthorized_client`; the scope is
//! what the user granted (the code's or the family's), kept within what the client may still
//! ask for (a scope removed from the client since is dropped); a refresh may narrow the scope,
//! never widen it (`invalid_scope`, RFC 6749 section 6); an ID token is issued when the scope
//! holds `openid`, a refresh token when it holds `offline_access` and the client has the
//! `refresh_token` grant. A user token's audience is the resource the request names (RFC 8707)
//! or the client's default; a client with no audience (an app that only signs users in) gets a
//! token for this server itself (the userinfo endpoint).
//!
//! This module must never widen a scope, and never put a profile or email claim in a userinfo
//! answer whose token lacks the scope that covers it.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Map, Value};

use crate::oauth::{
    select_audience, AccessTokenClaims, ClientPolicy, GrantError, GrantType, ScopeSet,
    TokenLifetimes,
};
use crate::tenant::TenantId;
use crate::time::Timestamp;
use crate::user::{Email, UserProfile};

/// The scope that makes a request an OpenID Connect one (an ID token is issued).
pub const OPENID: &str = "openid";
/// The scope asking for a refresh token.
pub const OFFLINE_ACCESS: &str = "offline_access";
/// The scope releasing the profile claims at userinfo.
pub const PROFILE: &str = "profile";
/// The scope releasing `email` and `email_verified` at userinfo.
pub const EMAIL: &str = "email";

/// The claims userinfo can release, as discovery lists them (`claims_supported`, with the ID
/// token's).
pub const USERINFO_CLAIMS: &[&str] = &[
    "sub",
    "name",
    "given_name",
    "family_name",
    "nickname",
    "preferred_username",
    "picture",
    "website",
    "locale",
    "zoneinfo",
    "updated_at",
    "email",
    "email_verified",
];

/// The claims of the ID token.
pub const ID_TOKEN_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "iat",
    "auth_time",
    "nonce",
    "acr",
    "amr",
    "sid",
    "azp",
];

/// What a user grant issues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGrantDecision {
    /// The access token's audience: a resource server's, or `None` for this server itself.
    pub audience: Option<String>,
    pub scopes: ScopeSet,
    pub lifetime: Duration,
    /// `openid` was granted.
    pub id_token: bool,
    /// A refresh token goes with the answer (a new family at a code redemption, the successor
    /// at a refresh).
    pub refresh_token: bool,
}

/// What one sign-in established, carried into every token minted from it.
#[derive(Debug, Clone, Copy)]
pub struct SignInFacts<'a> {
    pub tenant: &'a TenantId,
    pub user_id: &'a str,
    pub sid: Option<&'a str>,
    pub auth_time: Timestamp,
    pub acr: Option<&'a str>,
    pub amr: &'a [String],
    /// The refresh-token family the tokens belong to, if any.
    pub family: Option<&'a str>,
}

fn granted(client: &ClientPolicy, stored: &[String]) -> ScopeSet {
    // A stored scope that no longer parses is dropped, like one the client lost.
    let stored = ScopeSet::from_strs(stored.iter().map(String::as_str)).unwrap_or_default();
    stored.intersection(&client.scopes)
}

fn decision(
    client: &ClientPolicy,
    scopes: ScopeSet,
    targets: &[&str],
    lifetimes: TokenLifetimes,
    refresh_token: bool,
) -> Result<UserGrantDecision, GrantError> {
    let audience = if targets.is_empty() && client.audiences.is_empty() {
        None
    } else {
        Some(select_audience(client, targets)?.as_str().to_owned())
    };
    let has = |s: &str| scopes.iter().any(|x| x.as_str() == s);
    let id_token = has(OPENID);
    Ok(UserGrantDecision {
        audience,
        lifetime: client.access_token_ttl.min(lifetimes.max),
        id_token,
        refresh_token,
        scopes,
    })
}

/// The `authorization_code` grant's decision over the scope the code carries.
pub fn decide_code_grant(
    client: &ClientPolicy,
    code_scope: &[String],
    targets: &[&str],
    lifetimes: TokenLifetimes,
) -> Result<UserGrantDecision, GrantError> {
    if !client.grant_types.contains(&GrantType::AuthorizationCode) {
        return Err(GrantError::UnauthorizedClient);
    }
    let scopes = granted(client, code_scope);
    let refresh = scopes.iter().any(|s| s.as_str() == OFFLINE_ACCESS)
        && client.grant_types.contains(&GrantType::RefreshToken);
    decision(client, scopes, targets, lifetimes, refresh)
}

/// The device code grant's decision (RFC 8628) over the scope the device asked for and the
/// person approved: like a code's, without PKCE or a redirect URI (the device code is bound to
/// the client, which the store checks).
pub fn decide_device_grant(
    client: &ClientPolicy,
    approved_scope: &[String],
    targets: &[&str],
    lifetimes: TokenLifetimes,
) -> Result<UserGrantDecision, GrantError> {
    if !client.grant_types.contains(&GrantType::DeviceCode) {
        return Err(GrantError::UnauthorizedClient);
    }
    let scopes = granted(client, approved_scope);
    let refresh = scopes.iter().any(|s| s.as_str() == OFFLINE_ACCESS)
        && client.grant_types.contains(&GrantType::RefreshToken);
    decision(client, scopes, targets, lifetimes, refresh)
}

/// The `refresh_token` grant's decision over the family's scope and the optional `scope`
/// parameter, which may only narrow it.
pub fn decide_refresh_grant(
    client: &ClientPolicy,
    family_scope: &[String],
    requested: Option<&str>,
    targets: &[&str],
    lifetimes: TokenLifetimes,
) -> Result<UserGrantDecision, GrantError> {
    if !client.grant_types.contains(&GrantType::RefreshToken) {
        return Err(GrantError::UnauthorizedClient);
    }
    let grantable = granted(client, family_scope);
    let scopes = match requested {
        None => grantable,
        Some(s) => {
            let asked = ScopeSet::parse_delimited(s).map_err(|_| GrantError::InvalidScope)?;
            if asked.is_empty() || !asked.is_subset(&grantable) {
                return Err(GrantError::InvalidScope);
            }
            asked
        }
    };
    decision(client, scopes, targets, lifetimes, true)
}

impl AccessTokenClaims {
    /// Claims of a user access token issued at `now` (RFC 9068 section 2.2: `sub` is the user).
    /// `own_audience` is this server's (the issuer) when the decision names no resource.
    pub fn for_user(
        issuer: &str,
        client_id: &str,
        decision: &UserGrantDecision,
        facts: &SignInFacts<'_>,
        jti: String,
        now: Timestamp,
    ) -> Self {
        let iat = now.as_secs();
        let lifetime = i64::try_from(decision.lifetime.as_secs()).unwrap_or(i64::MAX);
        Self {
            iss: issuer.to_owned(),
            sub: facts.user_id.to_owned(),
            aud: decision
                .audience
                .clone()
                .unwrap_or_else(|| issuer.to_owned()),
            exp: iat.saturating_add(lifetime),
            iat,
            nbf: iat,
            jti,
            client_id: client_id.to_owned(),
            scope: (!decision.scopes.is_empty()).then(|| decision.scopes.to_delimited()),
            tenant: facts.tenant.as_str().to_owned(),
            auth_time: Some(facts.auth_time.as_secs()),
            acr: facts.acr.map(str::to_owned),
            amr: facts.amr.to_vec(),
            sid: facts.sid.map(str::to_owned),
            family: facts.family.map(str::to_owned),
            cnf: None,
            workload: None,
            act: None,
            exchanged_from: Vec::new(),
            may_act: None,
        }
    }
}

/// The claims of an ID token (OIDC Core section 2). `aud` is the client alone, so `azp` is the
/// same client (section 2 allows it, and some relying parties expect it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct IdTokenClaims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub auth_time: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nonce: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    pub azp: String,
    /// The tenant the user belongs to (the private claim access tokens carry too).
    pub tenant: String,
}

impl IdTokenClaims {
    /// An ID token for `client_id` issued at `now`, living as long as the access token beside
    /// it. `nonce` is the authentication request's (code redemption only: OIDC Core 12.2 lets
    /// a refresh's ID token omit it).
    pub fn new(
        issuer: &str,
        client_id: &str,
        facts: &SignInFacts<'_>,
        nonce: Option<&str>,
        lifetime: Duration,
        now: Timestamp,
    ) -> Self {
        let iat = now.as_secs();
        let lifetime = i64::try_from(lifetime.as_secs()).unwrap_or(i64::MAX);
        Self {
            iss: issuer.to_owned(),
            sub: facts.user_id.to_owned(),
            aud: client_id.to_owned(),
            exp: iat.saturating_add(lifetime),
            iat,
            auth_time: facts.auth_time.as_secs(),
            nonce: nonce.map(str::to_owned),
            acr: facts.acr.map(str::to_owned),
            amr: facts.amr.to_vec(),
            sid: facts.sid.map(str::to_owned),
            azp: client_id.to_owned(),
            tenant: facts.tenant.as_str().to_owned(),
        }
    }
}

/// What userinfo may tell about a user.
#[derive(Debug, Clone, Copy)]
pub struct UserClaims<'a> {
    pub sub: &'a str,
    pub username: &'a str,
    pub email: Option<&'a Email>,
    pub email_verified: bool,
    pub profile: &'a UserProfile,
    pub updated_at: Timestamp,
}

/// The userinfo answer for a token granted `scopes` (OIDC Core section 5.4): `sub` always;
/// `profile` releases the profile claims and `preferred_username`; `email` releases `email` and
/// `email_verified` (only if the user has an address).
pub fn userinfo_claims(scopes: &ScopeSet, user: &UserClaims<'_>) -> Map<String, Value> {
    let has = |s: &str| scopes.iter().any(|x| x.as_str() == s);
    let mut out = Map::new();
    out.insert("sub".into(), Value::from(user.sub));
    if has(PROFILE) {
        if let Ok(Value::Object(profile)) = serde_json::to_value(user.profile) {
            out.extend(profile);
        }
        out.insert("preferred_username".into(), Value::from(user.username));
        out.insert("updated_at".into(), Value::from(user.updated_at.as_secs()));
    }
    if has(EMAIL) {
        if let Some(email) = user.email {
            out.insert("email".into(), Value::from(email.as_str()));
            out.insert("email_verified".into(), Value::from(user.email_verified));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::oauth::Audience;

    fn scopes(s: &str) -> ScopeSet {
        ScopeSet::parse_delimited(s).expect("scopes")
    }

    fn strings(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_owned).collect()
    }

    fn app(grants: &[GrantType], audiences: &[&str]) -> ClientPolicy {
        ClientPolicy {
            client_id: "cl_app".into(),
            tenant: TenantId::parse("acme").expect("tenant"),
            grant_types: grants.to_vec(),
            scopes: scopes("openid profile email offline_access orders:read orders:write"),
            audiences: audiences
                .iter()
                .map(|a| Audience::parse(a).expect("aud"))
                .collect(),
            access_token_ttl: Duration::from_secs(600),
        }
    }

    const BOTH: &[GrantType] = &[GrantType::AuthorizationCode, GrantType::RefreshToken];

    #[test]
    fn a_code_grant_issues_what_the_scope_and_registration_allow() {
        let lt = TokenLifetimes::default();
        let d = decide_code_grant(
            &app(BOTH, &["orders-api"]),
            &strings("openid offline_access orders:read"),
            &[],
            lt,
        )
        .expect("decision");
        assert!(d.id_token && d.refresh_token);
        assert_eq!(d.audience.as_deref(), Some("orders-api"));
        assert_eq!(d.scopes.to_delimited(), "offline_access openid orders:read");
        // No refresh token without the grant, none without offline_access; no ID token
        // without openid; a sign-in-only app's token is for this server.
        let only_code = app(&[GrantType::AuthorizationCode], &[]);
        let d = decide_code_grant(&only_code, &strings("openid offline_access"), &[], lt)
            .expect("decision");
        assert!(!d.refresh_token && d.id_token && d.audience.is_none());
        let d = decide_code_grant(&app(BOTH, &[]), &strings("profile"), &[], lt).expect("ok");
        assert!(!d.refresh_token && !d.id_token);
        // A scope the client lost since the code was issued is dropped.
        let d =
            decide_code_grant(&app(BOTH, &[]), &strings("openid gone:scope"), &[], lt).expect("ok");
        assert_eq!(d.scopes.to_delimited(), "openid");
        assert_eq!(
            decide_code_grant(&app(&[GrantType::ClientCredentials], &[]), &[], &[], lt),
            Err(GrantError::UnauthorizedClient)
        );
        assert_eq!(
            decide_code_grant(&app(BOTH, &["orders-api"]), &[], &["other-api"], lt),
            Err(GrantError::InvalidTarget)
        );
    }

    #[test]
    fn a_refresh_may_narrow_the_scope_but_never_widen_it() {
        let lt = TokenLifetimes::default();
        let c = app(BOTH, &["orders-api"]);
        let family = strings("openid offline_access orders:read");
        let d = decide_refresh_grant(&c, &family, None, &[], lt).expect("ok");
        assert_eq!(d.scopes.to_delimited(), "offline_access openid orders:read");
        assert!(d.refresh_token && d.id_token);
        let d = decide_refresh_grant(&c, &family, Some("orders:read"), &[], lt).expect("ok");
        assert_eq!(d.scopes.to_delimited(), "orders:read");
        assert!(!d.id_token);
        for wider in [
            "orders:write",
            "orders:read orders:write",
            "bad\"scope",
            " ",
        ] {
            assert_eq!(
                decide_refresh_grant(&c, &family, Some(wider), &[], lt),
                Err(GrantError::InvalidScope),
                "{wider}"
            );
        }
        assert_eq!(
            decide_refresh_grant(
                &app(&[GrantType::AuthorizationCode], &[]),
                &family,
                None,
                &[],
                lt
            ),
            Err(GrantError::UnauthorizedClient)
        );
    }

    #[test]
    fn user_tokens_carry_the_sign_in() {
        let tenant = TenantId::parse("acme").expect("tenant");
        let amr = vec!["pwd".to_owned()];
        let facts = SignInFacts {
            tenant: &tenant,
            user_id: "usr_1",
            sid: Some("sid1"),
            auth_time: Timestamp::from_secs(100),
            acr: Some("1"),
            amr: &amr,
            family: Some("rtf_1"),
        };
        let d = decide_code_grant(
            &app(BOTH, &[]),
            &strings("openid offline_access"),
            &[],
            TokenLifetimes::default(),
        )
        .expect("ok");
        let at = AccessTokenClaims::for_user(
            "https://id.test",
            "cl_app",
            &d,
            &facts,
            "j".into(),
            Timestamp::from_secs(200),
        );
        let v = serde_json::to_value(&at).expect("json");
        assert_eq!(v["sub"], "usr_1");
        assert_eq!(v["aud"], "https://id.test");
        assert_eq!(v["client_id"], "cl_app");
        assert_eq!(v["auth_time"], 100);
        assert_eq!(v["amr"], serde_json::json!(["pwd"]));
        assert_eq!(v["sid"], "sid1");
        assert_eq!(v[crate::oauth::FAMILY_CLAIM], "rtf_1");
        assert_eq!(v["exp"], 800);
        let id = IdTokenClaims::new(
            "https://id.test",
            "cl_app",
            &facts,
            Some("n1"),
            Duration::from_secs(600),
            Timestamp::from_secs(200),
        );
        let v = serde_json::to_value(&id).expect("json");
        for claim in ID_TOKEN_CLAIMS {
            assert!(v.get(claim).is_some(), "{claim}");
        }
        assert_eq!(
            (v["aud"].as_str(), v["azp"].as_str()),
            (Some("cl_app"), Some("cl_app"))
        );
        // A client-credentials token carries none of the user members.
        let m = serde_json::to_value(AccessTokenClaims {
            auth_time: None,
            amr: vec![],
            sid: None,
            family: None,
            acr: None,
            ..at
        })
        .expect("json");
        for absent in ["auth_time", "amr", "sid", "acr", crate::oauth::FAMILY_CLAIM] {
            assert!(m.get(absent).is_none(), "{absent}");
        }
    }

    #[test]
    fn userinfo_releases_claims_by_scope() {
        let profile: UserProfile =
            serde_json::from_value(serde_json::json!({"name": "Ada Lovelace", "locale": "en"}))
                .expect("profile");
        let email = Email::parse("ada@example.com").expect("email");
        let user = UserClaims {
            sub: "usr_1",
            username: "ada",
            email: Some(&email),
            email_verified: true,
            profile: &profile,
            updated_at: Timestamp::from_secs(5),
        };
        let only = userinfo_claims(&scopes("openid"), &user);
        assert_eq!(only.keys().collect::<Vec<_>>(), vec!["sub"]);
        let p = userinfo_claims(&scopes("openid profile"), &user);
        assert_eq!(p["name"], "Ada Lovelace");
        assert_eq!(p["preferred_username"], "ada");
        assert!(p.get("email").is_none());
        let e = userinfo_claims(&scopes("openid email"), &user);
        assert_eq!(e["email"], "ada@example.com");
        assert_eq!(e["email_verified"], true);
        assert!(e.get("name").is_none());
        let no_address = UserClaims {
            email: None,
            ..user
        };
        assert!(userinfo_claims(&scopes("openid email"), &no_address)
            .get("email_verified")
            .is_none());
        for k in userinfo_claims(&scopes("openid profile email"), &user).keys() {
            assert!(USERINFO_CLAIMS.contains(&k.as_str()), "{k}");
        }
    }
}
