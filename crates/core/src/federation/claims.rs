//! An external identity token's claims read into a [`Workload`]: the registered claims the
//! rules need (`iss`, `sub`, `aud`, `exp`, `iat`, `jti`) and a flat map of named fields that
//! conditions test.
//!
//! Fields are the token's top-level string, number, boolean and string-list claims, plus the
//! fields the issuer's preset derives (the platform subject split apart, Kubernetes' nested
//! `kubernetes.io` object flattened). A derived field that disagrees with a claim of the same
//! name makes the whole token unreadable: a subject saying one repository and a claim saying
//! another is not something to choose between.
//!
//! Must never: guess. Nested objects other than those a preset maps are not addressable, and a
//! value too long to test is dropped (so a condition on it fails as missing).

use std::collections::BTreeMap;

use serde_json::{Map, Value};

use super::condition::MAX_VALUE_LEN;
use super::preset::Preset;

/// Most fields a workload keeps; claims beyond this are ignored (rules only ever narrow).
const MAX_FIELDS: usize = 256;
/// Most elements of a list claim that are kept.
const MAX_LIST: usize = 64;

/// One field's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClaimValue {
    Str(String),
    List(Vec<String>),
}

/// Why a token cannot be read as a workload. Audit reason codes; the caller sees
/// `invalid_grant`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    #[error("subject_token_missing_{0}")]
    MissingClaim(&'static str),
    #[error("subject_token_bad_{0}")]
    BadClaim(&'static str),
    #[error("subject_unparseable")]
    BadSubject,
    #[error("subject_conflicts_with_claim:{0}")]
    Conflict(String),
}

/// A verified external token, read for the rule engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    pub issuer: String,
    pub subject: String,
    pub audiences: Vec<String>,
    pub expires_at: i64,
    pub issued_at: Option<i64>,
    pub not_before: Option<i64>,
    pub jti: Option<String>,
    fields: BTreeMap<String, ClaimValue>,
}

impl Workload {
    /// Reads a claims object whose signature has been checked. `preset` decides which fields
    /// are derived from the subject and nested claims.
    pub fn from_claims(preset: Preset, claims: &Map<String, Value>) -> Result<Self, WorkloadError> {
        let text = |name: &'static str| -> Result<String, WorkloadError> {
            match claims.get(name) {
                None => Err(WorkloadError::MissingClaim(name)),
                Some(Value::String(s)) if !s.is_empty() && s.len() <= MAX_VALUE_LEN => {
                    Ok(s.clone())
                }
                Some(_) => Err(WorkloadError::BadClaim(name)),
            }
        };
        let time = |name: &'static str| -> Result<Option<i64>, WorkloadError> {
            match claims.get(name) {
                None => Ok(None),
                Some(v) => v.as_i64().map(Some).ok_or(WorkloadError::BadClaim(name)),
            }
        };
        let issuer = text("iss")?;
        let subject = text("sub")?;
        let expires_at = time("exp")?.ok_or(WorkloadError::MissingClaim("exp"))?;
        let audiences = match claims.get("aud") {
            None => return Err(WorkloadError::MissingClaim("aud")),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) if !a.is_empty() && a.len() <= MAX_LIST => a
                .iter()
                .map(|v| v.as_str().map(str::to_owned))
                .collect::<Option<Vec<_>>>()
                .ok_or(WorkloadError::BadClaim("aud"))?,
            Some(_) => return Err(WorkloadError::BadClaim("aud")),
        };
        let jti = match claims.get("jti") {
            None => None,
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Some(s.clone()),
            Some(_) => return Err(WorkloadError::BadClaim("jti")),
        };
        let mut fields = BTreeMap::new();
        for (name, value) in claims.iter().take(MAX_FIELDS) {
            if let Some(v) = field_value(value) {
                fields.insert(name.clone(), v);
            }
        }
        let mut w = Self {
            issuer,
            subject,
            audiences,
            expires_at,
            issued_at: time("iat")?,
            not_before: time("nbf")?,
            jti,
            fields,
        };
        for (name, value) in preset.derive(&w.subject, claims)? {
            w.add_derived(name, value)?;
        }
        Ok(w)
    }

    fn add_derived(&mut self, name: &str, value: String) -> Result<(), WorkloadError> {
        match self.fields.get(name) {
            Some(ClaimValue::Str(existing)) if *existing == value => Ok(()),
            Some(_) => Err(WorkloadError::Conflict(name.to_owned())),
            None => {
                if value.len() <= MAX_VALUE_LEN {
                    self.fields.insert(name.to_owned(), ClaimValue::Str(value));
                }
                Ok(())
            }
        }
    }

    /// The field a condition tests, if the token has it.
    pub fn field(&self, name: &str) -> Option<&ClaimValue> {
        self.fields.get(name)
    }

    /// Every field, for the explain output and the audit log.
    pub fn fields(&self) -> impl Iterator<Item = (&str, &ClaimValue)> {
        self.fields.iter().map(|(k, v)| (k.as_str(), v))
    }
}

fn scalar(v: &Value) -> Option<String> {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_i64() || n.is_u64() => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    };
    (s.len() <= MAX_VALUE_LEN).then_some(s)
}

fn field_value(v: &Value) -> Option<ClaimValue> {
    match v {
        Value::Array(a) if a.len() <= MAX_LIST => a
            .iter()
            .map(scalar)
            .collect::<Option<Vec<_>>>()
            .map(ClaimValue::List),
        other => scalar(other).map(ClaimValue::Str),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => unreachable!("test input is an object"),
        }
    }

    #[test]
    fn registered_claims_are_required_and_typed() {
        let base = json!({"iss": "https://i", "sub": "s", "aud": "a", "exp": 10});
        let w = Workload::from_claims(Preset::GenericOidc, &obj(base.clone())).expect("valid");
        assert_eq!(w.audiences, vec!["a".to_owned()]);
        assert_eq!(w.issued_at, None);
        for (drop, err) in [
            ("iss", WorkloadError::MissingClaim("iss")),
            ("sub", WorkloadError::MissingClaim("sub")),
            ("aud", WorkloadError::MissingClaim("aud")),
            ("exp", WorkloadError::MissingClaim("exp")),
        ] {
            let mut m = obj(base.clone());
            m.remove(drop);
            assert_eq!(Workload::from_claims(Preset::GenericOidc, &m), Err(err));
        }
        for (name, bad) in [
            ("exp", json!("10")),
            ("exp", json!(1.5)),
            ("aud", json!([])),
            ("aud", json!([1])),
            ("sub", json!("")),
            ("iat", json!("x")),
            ("jti", json!(7)),
        ] {
            let mut m = obj(base.clone());
            m.insert(name.into(), bad);
            assert!(
                Workload::from_claims(Preset::GenericOidc, &m).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn scalars_and_lists_become_fields_and_objects_do_not() {
        let m = obj(json!({
            "iss": "https://i", "sub": "s", "aud": ["a", "b"], "exp": 10,
            "project_id": 42, "ref_protected": true, "groups": ["x", "y"],
            "nested": {"a": "b"}, "float": 1.5, "long": "z".repeat(MAX_VALUE_LEN + 1),
        }));
        let w = Workload::from_claims(Preset::GenericOidc, &m).expect("valid");
        assert_eq!(w.field("project_id"), Some(&ClaimValue::Str("42".into())));
        assert_eq!(
            w.field("ref_protected"),
            Some(&ClaimValue::Str("true".into()))
        );
        assert_eq!(
            w.field("groups"),
            Some(&ClaimValue::List(vec!["x".into(), "y".into()]))
        );
        assert_eq!(w.field("nested"), None);
        assert_eq!(w.field("float"), None);
        assert_eq!(w.field("long"), None);
    }
}
