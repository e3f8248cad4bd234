//! Paging on the wire: the `limit` and `cursor` query parameters of every list, the opaque
//! cursor, and the one response shape `{"items": [...], "next_cursor": "..." | null}`.
//!
//! A cursor is the store's [`PageKey`] (the last row's `(time, id)`) bound to the list it came
//! from (its *scope*: the list's name and tenant), with a CRC-32, in base64url. It is not a
//! secret and grants nothing: every listing query stays scoped by the caller's tenant, so a
//! forged cursor can only move within a list the caller may read anyway. The binding and the
//! checksum make a cursor from another list or tenant, a truncated one or a hand-edited one a
//! clean `400 invalid_request` instead of a confusing page. The key order is the store's rule
//! (`portcullis_store::page`); this module only carries it.
//!
//! This module must never answer a bad cursor or limit with anything but `invalid_request`, and
//! never page by offset.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use portcullis_core::time::Timestamp;
use portcullis_store::{KeyId, Page, PageKey, PageRequest, DEFAULT_PAGE_LIMIT, MAX_PAGE_LIMIT};
use serde::de::DeserializeOwned;
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use crate::error::ApiError;

/// The longest cursor accepted (a key holds an id of at most a few dozen characters).
const MAX_CURSOR_LEN: usize = 512;

/// `limit` and `cursor`, as documented on every list operation.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Rows per page, 1 to 1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<u32>,
    /// Where to continue: the `next_cursor` of the previous page, unchanged.
    cursor: Option<String>,
}

/// The paging a request asked for, not yet bound to a list (see [`Paging::request`]).
#[derive(Debug, Clone, Default)]
pub struct Paging {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl Paging {
    /// The store's page request for the list `scope` (for example `clients:acme`): the cursor
    /// must have been issued for that same list.
    pub fn request(&self, scope: &str) -> Result<PageRequest, ApiError> {
        let after = self
            .cursor
            .as_deref()
            .map(|c| decode_cursor(c, scope).ok_or_else(invalid_cursor))
            .transpose()?;
        Ok(PageRequest {
            after,
            limit: self.limit.unwrap_or(DEFAULT_PAGE_LIMIT),
        })
    }
}

/// A list's query string: [`Paging`] plus the list's own filters `F` (every other parameter;
/// `F` should refuse unknown fields).
#[derive(Debug)]
pub struct ListQuery<F> {
    pub paging: Paging,
    pub filter: F,
}

/// A list without filters of its own.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoFilter {}

impl<S: Send + Sync, F: DeserializeOwned> FromRequestParts<S> for ListQuery<F> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parse_query(parts.uri.query().unwrap_or(""))
    }
}

fn parse_query<F: DeserializeOwned>(raw: &str) -> Result<ListQuery<F>, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(raw)
        .map_err(|_| ApiError::invalid_request("malformed query string"))?;
    let mut paging = Paging::default();
    let mut rest = Vec::new();
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                if paging.limit.is_some() {
                    return Err(ApiError::invalid_request("limit is given twice"));
                }
                paging.limit = Some(parse_limit(&value)?);
            }
            "cursor" => {
                if paging.cursor.is_some() {
                    return Err(ApiError::invalid_request("cursor is given twice"));
                }
                paging.cursor = Some(value);
            }
            _ => rest.push((key, value)),
        }
    }
    let rest = serde_urlencoded::to_string(&rest)
        .map_err(|_| ApiError::invalid_request("malformed query string"))?;
    let filter = serde_urlencoded::from_str::<F>(&rest)
        .map_err(|e| ApiError::invalid_request(format!("invalid query: {e}")))?;
    Ok(ListQuery { paging, filter })
}

fn parse_limit(value: &str) -> Result<u32, ApiError> {
    match value.parse::<u32>() {
        Ok(n) if (1..=MAX_PAGE_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::invalid_request(format!(
            "limit must be an integer from 1 to {MAX_PAGE_LIMIT}"
        ))),
    }
}

fn invalid_cursor() -> ApiError {
    ApiError::invalid_request("invalid cursor: pass the next_cursor of this same list unchanged")
}

/// The optional `tenant` filter of a global (every-tenant) list, parsed, and the cursor scope of
/// `list` under it: a cursor is good only for the same tenant filter it was made under.
pub fn tenant_filtered(
    list: &str,
    tenant: Option<&str>,
) -> Result<(Option<portcullis_core::tenant::TenantId>, String), ApiError> {
    let tenant = tenant
        .map(|t| {
            portcullis_core::tenant::TenantId::parse(t)
                .map_err(|_| ApiError::invalid_request("invalid tenant id"))
        })
        .transpose()?;
    let scope = match &tenant {
        Some(t) => format!("{list}:*:{t}"),
        None => format!("{list}:*"),
    };
    Ok((tenant, scope))
}

/// One page of a list on the wire.
#[derive(Debug, Serialize, ToSchema)]
pub struct Paged<T> {
    pub items: Vec<T>,
    /// Pass as `cursor` to read the next page; `null` on the last page.
    pub next_cursor: Option<String>,
}

impl<T> Paged<T> {
    /// The wire page of the list `scope` from a store page, each row turned into its view.
    pub fn new<U>(page: Page<U>, scope: &str, view: impl FnMut(U) -> T) -> Self {
        Self {
            next_cursor: page.next.as_ref().map(|k| encode_cursor(k, scope)),
            items: page.items.into_iter().map(view).collect(),
        }
    }
}

fn encode_cursor(key: &PageKey, scope: &str) -> String {
    let id = match &key.id {
        KeyId::Text(t) => format!("t{t}"),
        KeyId::Int(n) => format!("i{n}"),
    };
    let mut bytes = format!("{scope}\n{}\n{id}", key.at.as_millis()).into_bytes();
    let crc = crc32fast::hash(&bytes);
    bytes.extend_from_slice(&crc.to_be_bytes());
    URL_SAFE_NO_PAD.encode(bytes)
}

fn decode_cursor(cursor: &str, scope: &str) -> Option<PageKey> {
    if cursor.is_empty() || cursor.len() > MAX_CURSOR_LEN {
        return None;
    }
    let bytes = URL_SAFE_NO_PAD.decode(cursor).ok()?;
    let split = bytes.len().checked_sub(4)?;
    let (payload, crc) = bytes.split_at(split);
    if crc32fast::hash(payload).to_be_bytes() != crc {
        return None;
    }
    let text = std::str::from_utf8(payload).ok()?;
    let mut parts = text.splitn(3, '\n');
    let (bound, at, id) = (parts.next()?, parts.next()?, parts.next()?);
    if bound != scope {
        return None;
    }
    let at = Timestamp::from_millis(at.parse::<i64>().ok()?);
    let id = match id.split_at_checked(1)? {
        ("t", t) if !t.is_empty() => KeyId::Text(t.to_owned()),
        ("i", n) => KeyId::Int(n.parse().ok()?),
        _ => return None,
    };
    Some(PageKey { at, id })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_filter_scopes_the_cursor_and_is_parsed() {
        let (none, all) = tenant_filtered("alerts", None).expect("no filter");
        assert!(none.is_none());
        let (one, acme) = tenant_filtered("alerts", Some("acme")).expect("acme");
        assert_eq!(one.map(|t| t.to_string()), Some("acme".to_owned()));
        let (_, globex) = tenant_filtered("alerts", Some("globex")).expect("globex");
        let (_, other_list) = tenant_filtered("webhook-deliveries", Some("acme")).expect("list");
        // Four scopes, all different: a cursor made under one is refused under the others.
        let scopes = [&all, &acme, &globex, &other_list];
        for (i, a) in scopes.iter().enumerate() {
            for b in &scopes[i + 1..] {
                assert_ne!(a, b);
            }
        }
        assert!(tenant_filtered("alerts", Some("Not A Tenant!")).is_err());
    }

    fn key() -> PageKey {
        PageKey {
            at: Timestamp::from_millis(1_700_000_000_123),
            id: KeyId::Text("cl_abc".into()),
        }
    }

    #[test]
    fn a_cursor_reads_back_in_its_own_list_only() {
        let c = encode_cursor(&key(), "clients:acme");
        assert_eq!(decode_cursor(&c, "clients:acme"), Some(key()));
        assert_eq!(decode_cursor(&c, "clients:globex"), None, "another tenant");
        assert_eq!(decode_cursor(&c, "api-keys:acme"), None, "another list");
        let n = PageKey {
            at: Timestamp::from_millis(5),
            id: KeyId::Int(42),
        };
        let c = encode_cursor(&n, "audit-events:acme");
        assert_eq!(decode_cursor(&c, "audit-events:acme"), Some(n));
    }

    #[test]
    fn a_tampered_truncated_or_foreign_cursor_is_refused() {
        let c = encode_cursor(&key(), "clients:acme");
        let mut edited: Vec<u8> = c.clone().into_bytes();
        edited[3] = if edited[3] == b'A' { b'B' } else { b'A' };
        let edited = String::from_utf8(edited).expect("ascii");
        for bad in [
            edited.as_str(),
            &c[..c.len() - 2],
            "",
            "!!!",
            "AAAA",
            &"A".repeat(MAX_CURSOR_LEN + 4),
        ] {
            assert_eq!(decode_cursor(bad, "clients:acme"), None, "{bad:?}");
        }
        // A well-formed payload with a valid checksum but a nonsense key.
        let mut bytes = b"clients:acme\nsoon\ntx".to_vec();
        let crc = crc32fast::hash(&bytes);
        bytes.extend_from_slice(&crc.to_be_bytes());
        assert_eq!(
            decode_cursor(&URL_SAFE_NO_PAD.encode(bytes), "clients:acme"),
            None
        );
    }

    #[test]
    fn limits_outside_1_to_the_cap_are_refused() {
        for bad in ["0", "-1", "1001", "99999999999", "ten", ""] {
            assert!(parse_limit(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_limit("1").ok(), Some(1));
        assert_eq!(parse_limit("1000").ok(), Some(1000));
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Filter {
        owner: Option<String>,
    }

    #[test]
    fn paging_and_filters_are_read_apart_and_unknown_parameters_refused() {
        let q: ListQuery<Filter> = parse_query("owner=x&limit=5&cursor=abc").expect("parse");
        assert_eq!(q.filter.owner.as_deref(), Some("x"));
        assert_eq!(q.paging.limit, Some(5));
        assert_eq!(q.paging.cursor.as_deref(), Some("abc"));
        assert!(parse_query::<Filter>("color=red").is_err());
        assert!(parse_query::<Filter>("limit=1&limit=2").is_err());
        assert!(parse_query::<NoFilter>("owner=x").is_err());
        let q: ListQuery<NoFilter> = parse_query("").expect("empty");
        assert!(q.paging.request("x").expect("first page").after.is_none());
        assert!(q.paging.cursor.is_none());
    }
}
