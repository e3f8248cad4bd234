//! What a successful admin API answer must look like, read from the server's own OpenAPI
//! document (`portcullis_http::openapi`, the one `serve` publishes and `docs/openapi.json`
//! checks in): the top-level type of the route's 2xx body and the members it requires (through
//! `$ref` and `allOf`; for an array, in each element), recursively into each required member
//! (so a page's `items` must hold the route's items, not any list).
//!
//! This is how the CLI tells Portcullis from something else that answers 200 with JSON at
//! `--url` (another service's `{"status":"ok"}`): such an answer is refused with a clear message
//! instead of being printed as a table of dashes or taken as success. It only checks what the
//! document promises; it must never reject an answer that the document allows (a route or
//! body it does not describe passes).

use std::sync::LazyLock;

use serde_json::Value;

static DOCUMENT: LazyLock<Value> = LazyLock::new(|| {
    serde_json::from_str(&portcullis_http::openapi::document_json()).unwrap_or(Value::Null)
});

/// `Err` with what is missing when `body`, the answer to `method` on `path` (below
/// `/admin/v1`, no query), is not what the document promises for that route.
pub fn check(method: &str, path: &str, body: &Value) -> Result<(), String> {
    check_in(&DOCUMENT, method, path, body)
}

fn check_in(doc: &Value, method: &str, path: &str, body: &Value) -> Result<(), String> {
    let Some(operation) = operation(doc, method, &format!("/admin/v1{path}")) else {
        return Ok(());
    };
    let Some(responses) = operation["responses"].as_object() else {
        return Ok(());
    };
    let schemas: Vec<&Value> = responses
        .iter()
        .filter(|(code, _)| code.starts_with('2'))
        .filter_map(|(_, r)| r.pointer("/content/application~1json/schema"))
        .collect();
    if schemas.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    for schema in schemas {
        match conforms(doc, schema, body) {
            Ok(()) => return Ok(()),
            Err(e) => problems.push(e),
        }
    }
    Err(problems.join("; "))
}

/// The operation for `method` whose path template matches `path` segment by segment; with
/// several (`/api-keys/{id}` and `/api-keys/revoke-by-owner`), the one with most literal
/// segments.
fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> Option<&'a Value> {
    let wanted: Vec<&str> = path.split('/').collect();
    doc["paths"]
        .as_object()?
        .iter()
        .filter_map(|(template, item)| {
            let parts: Vec<&str> = template.split('/').collect();
            if parts.len() != wanted.len() {
                return None;
            }
            let mut literal = 0;
            for (t, w) in parts.iter().zip(&wanted) {
                if t.starts_with('{') && t.ends_with('}') {
                    continue;
                }
                if t != w {
                    return None;
                }
                literal += 1;
            }
            let op = item.get(method.to_ascii_lowercase())?;
            Some((literal, op))
        })
        .max_by_key(|(literal, _)| *literal)
        .map(|(_, op)| op)
}

fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema["$ref"].as_str() {
        Some(r) => r
            .strip_prefix('#')
            .and_then(|p| doc.pointer(p))
            .unwrap_or(&Value::Null),
        None => schema,
    }
}

/// The members an object schema requires, with those of every `allOf` part.
fn required<'a>(doc: &'a Value, schema: &'a Value, out: &mut Vec<&'a str>) {
    let schema = resolve(doc, schema);
    if let Some(r) = schema["required"].as_array() {
        out.extend(r.iter().filter_map(Value::as_str));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        required(doc, part, out);
    }
}

/// The schema of member `key`, from the object schema or one of its `allOf` parts.
fn property<'a>(doc: &'a Value, schema: &'a Value, key: &str) -> Option<&'a Value> {
    let schema = resolve(doc, schema);
    schema["properties"].get(key).or_else(|| {
        schema["allOf"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|part| property(doc, part, key))
    })
}

fn conforms(doc: &Value, schema: &Value, body: &Value) -> Result<(), String> {
    let schema = resolve(doc, schema);
    if schema["type"] == "array" {
        let items = body
            .as_array()
            .ok_or_else(|| "a list was expected".to_owned())?;
        return items
            .iter()
            .try_for_each(|item| conforms(doc, &schema["items"], item));
    }
    let mut keys = Vec::new();
    required(doc, schema, &mut keys);
    let is_object = schema["type"] == "object" || !keys.is_empty();
    if !is_object {
        return Ok(());
    }
    let object = body
        .as_object()
        .ok_or_else(|| "an object was expected".to_owned())?;
    let missing: Vec<&str> = keys
        .iter()
        .copied()
        .filter(|k| !object.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err(format!("it lacks {}", missing.join(", ")));
    }
    // Required members are checked too: a page's `items` must be the route's items, so another
    // service's `{"items": [...]}` does not pass for a Portcullis list.
    keys.iter()
        .try_for_each(|k| match property(doc, schema, k) {
            Some(member) => conforms(doc, member, &object[*k]),
            None => Ok(()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_servers_own_answers_conform_and_another_services_do_not() {
        let tenant = json!({"id": "acme", "display_name": "Acme", "status": "active",
            "created_at": "2026-01-01T00:00:00Z", "updated_at": "2026-01-01T00:00:00Z"});
        let page = |items: Value| json!({"items": items, "next_cursor": null});
        assert_eq!(check("GET", "/tenants", &page(json!([tenant]))), Ok(()));
        assert_eq!(check("GET", "/tenants", &page(json!([]))), Ok(()));
        assert_eq!(check("GET", "/tenants/acme", &tenant), Ok(()));
        assert_eq!(check("POST", "/tenants", &tenant), Ok(()));
        let other = json!({"status": "ok"});
        assert!(check("GET", "/tenants", &other).is_err());
        assert!(check("GET", "/tenants", &json!([tenant])).is_err());
        assert!(check("GET", "/tenants", &page(json!([other]))).is_err());
        let e = check("GET", "/tenants/acme", &other).expect_err("not a tenant");
        assert!(e.contains("display_name"), "{e}");
        // allOf: a created client is a client view (plus its secret, when it has one).
        let e = check("POST", "/tenants/acme/clients", &json!({"client_id": "x"}))
            .expect_err("not a created client");
        assert!(e.contains("auth_method"), "{e}");
        // The literal segment wins over `{id}`.
        let e = check(
            "POST",
            "/tenants/acme/api-keys/revoke-by-owner",
            &json!({"id": "k"}),
        )
        .expect_err("not a revoke-by-owner answer");
        assert!(e.contains("revoked"), "{e}");
    }

    #[test]
    fn what_the_document_does_not_describe_passes() {
        assert_eq!(check("GET", "/no/such/route", &json!(1)), Ok(()));
        assert_eq!(check_in(&Value::Null, "GET", "/tenants", &json!(1)), Ok(()));
    }
}
