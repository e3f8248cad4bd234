//! Per-claim conditions of a trust rule: `equals`, `one_of`, `prefix`, `glob` and `exists`.
//!
//! A condition names one workload field and one test. A field that is absent, empty, or an
//! empty list fails every test, `exists` included. On a list field (`aud`-like claims), a test
//! holds when it holds for at least one element; there are no negative tests, so this can only
//! ever narrow what a rule admits.
//!
//! A glob's `*` matches any run of characters except `/` and `:`, so `repo:acme/*` can never
//! match `repo:acme/app/../other` nor `repo:acme/app:environment:prod`-shaped values across a
//! separator. There is no other wildcard and no escape.
//!
//! Must never: accept an unbounded pattern, or let a malformed condition through at save time.

use serde::{Deserialize, Serialize};

use super::claims::{ClaimValue, Workload};

/// Longest value or pattern a condition may hold.
pub const MAX_VALUE_LEN: usize = 1024;
/// Most values one `one_of` may list.
pub const MAX_ONE_OF: usize = 64;
/// Longest field name.
const MAX_CLAIM_NAME_LEN: usize = 128;

/// Why a condition is not well formed. Operator-facing text (admin API, CLI).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    #[error("a claim name is 1 to 128 characters of letters, digits, '_', '-', '.', '/'")]
    BadClaimName,
    #[error("a condition holds exactly one of equals, one_of, prefix, glob, exists")]
    NotExactlyOneTest,
    #[error("a condition value is 1 to 1024 characters")]
    BadValue,
    #[error("one_of lists 1 to 64 values")]
    BadOneOf,
    #[error("exists must be true (a missing claim always fails a rule; there is no negation)")]
    ExistsFalse,
    #[error("a glob pattern is 1 to 1024 characters and may not hold '**'")]
    BadGlob,
}

/// A glob pattern: literal text and `*`, where `*` never crosses `/` or `:`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Glob(String);

impl Glob {
    pub fn parse(s: &str) -> Result<Self, ConditionError> {
        if s.is_empty() || s.len() > MAX_VALUE_LEN || s.contains("**") {
            return Err(ConditionError::BadGlob);
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `value` matches the whole pattern. Dynamic programming over bytes: `O(n * m)`
    /// with both bounded by [`MAX_VALUE_LEN`], no backtracking blow-up. Byte-wise matching is
    /// sound for UTF-8 because the separators are ASCII and a literal never starts on a
    /// continuation byte.
    pub fn matches(&self, value: &str) -> bool {
        if value.len() > MAX_VALUE_LEN {
            return false;
        }
        let p = self.0.as_bytes();
        let v = value.as_bytes();
        // row[j]: the pattern prefix read so far matches v[..j].
        let mut row = vec![false; v.len() + 1];
        row[0] = true;
        for &pc in p {
            let mut next = vec![false; v.len() + 1];
            if pc == b'*' {
                // `*` extends any match by bytes that are not separators (or by nothing).
                for j in 0..=v.len() {
                    next[j] =
                        row[j] || (j > 0 && next[j - 1] && v[j - 1] != b'/' && v[j - 1] != b':');
                }
            } else {
                for j in 1..=v.len() {
                    next[j] = row[j - 1] && v[j - 1] == pc;
                }
            }
            row = next;
        }
        row[v.len()]
    }
}

/// One test on one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Equals(String),
    OneOf(Vec<String>),
    Prefix(String),
    Glob(Glob),
    Exists,
}

impl Test {
    pub(crate) fn holds_for(&self, value: &str) -> bool {
        match self {
            Self::Equals(v) => value == v,
            Self::OneOf(vs) => vs.iter().any(|v| v == value),
            Self::Prefix(p) => value.starts_with(p.as_str()),
            Self::Glob(g) => g.matches(value),
            Self::Exists => !value.is_empty(),
        }
    }

    /// Whether this test names exact values (what pinning an immutable id needs).
    pub fn is_exact(&self) -> bool {
        matches!(self, Self::Equals(_) | Self::OneOf(_))
    }

    /// The name used in the stored and wire form, and in audit reasons.
    pub fn op(&self) -> &'static str {
        match self {
            Self::Equals(_) => "equals",
            Self::OneOf(_) => "one_of",
            Self::Prefix(_) => "prefix",
            Self::Glob(_) => "glob",
            Self::Exists => "exists",
        }
    }
}

/// A field of the workload and the test it must pass.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawCondition", into = "RawCondition")]
pub struct ClaimCondition {
    claim: String,
    test: Test,
}

/// What evaluating a condition found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Holds,
    /// The field is absent or empty: always a failure.
    Missing,
    NotMatched,
}

impl ClaimCondition {
    pub fn new(claim: &str, test: Test) -> Result<Self, ConditionError> {
        let name_ok = (1..=MAX_CLAIM_NAME_LEN).contains(&claim.len())
            && claim
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"_-./".contains(&b));
        if !name_ok {
            return Err(ConditionError::BadClaimName);
        }
        let value_ok = |v: &String| (1..=MAX_VALUE_LEN).contains(&v.len());
        match &test {
            Test::Equals(v) | Test::Prefix(v) if !value_ok(v) => {
                return Err(ConditionError::BadValue)
            }
            Test::OneOf(vs)
                if vs.is_empty() || vs.len() > MAX_ONE_OF || !vs.iter().all(value_ok) =>
            {
                return Err(ConditionError::BadOneOf)
            }
            _ => {}
        }
        Ok(Self {
            claim: claim.to_owned(),
            test,
        })
    }

    pub fn claim(&self) -> &str {
        &self.claim
    }

    pub fn test(&self) -> &Test {
        &self.test
    }

    pub fn evaluate(&self, workload: &Workload) -> Outcome {
        match workload.field(&self.claim) {
            None => Outcome::Missing,
            Some(ClaimValue::Str(s)) if s.is_empty() => Outcome::Missing,
            Some(ClaimValue::List(l)) if l.iter().all(String::is_empty) => Outcome::Missing,
            Some(ClaimValue::Str(s)) => {
                if self.test.holds_for(s) {
                    Outcome::Holds
                } else {
                    Outcome::NotMatched
                }
            }
            Some(ClaimValue::List(l)) => {
                if l.iter().any(|s| self.test.holds_for(s)) {
                    Outcome::Holds
                } else {
                    Outcome::NotMatched
                }
            }
        }
    }
}

/// The stored and wire form: `{"claim": "ref", "equals": "refs/heads/main"}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    claim: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    one_of: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    glob: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    exists: Option<bool>,
}

impl TryFrom<RawCondition> for ClaimCondition {
    type Error = ConditionError;

    fn try_from(r: RawCondition) -> Result<Self, Self::Error> {
        let test = match (r.equals, r.one_of, r.prefix, r.glob, r.exists) {
            (Some(v), None, None, None, None) => Test::Equals(v),
            (None, Some(vs), None, None, None) => Test::OneOf(vs),
            (None, None, Some(p), None, None) => Test::Prefix(p),
            (None, None, None, Some(g), None) => Test::Glob(Glob::parse(&g)?),
            (None, None, None, None, Some(true)) => Test::Exists,
            (None, None, None, None, Some(false)) => return Err(ConditionError::ExistsFalse),
            _ => return Err(ConditionError::NotExactlyOneTest),
        };
        Self::new(&r.claim, test)
    }
}

impl From<ClaimCondition> for RawCondition {
    fn from(c: ClaimCondition) -> Self {
        let mut r = RawCondition {
            claim: c.claim,
            equals: None,
            one_of: None,
            prefix: None,
            glob: None,
            exists: None,
        };
        match c.test {
            Test::Equals(v) => r.equals = Some(v),
            Test::OneOf(vs) => r.one_of = Some(vs),
            Test::Prefix(p) => r.prefix = Some(p),
            Test::Glob(g) => r.glob = Some(g.0),
            Test::Exists => r.exists = Some(true),
        }
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn glob(p: &str) -> Glob {
        Glob::parse(p).expect("valid")
    }

    #[test]
    fn a_glob_star_never_crosses_a_slash_or_a_colon() {
        assert!(glob("acme/*").matches("acme/app"));
        assert!(glob("acme/*").matches("acme/"));
        assert!(!glob("acme/*").matches("acme/app/sub"));
        assert!(!glob("acme/*").matches("acme/app:x"));
        assert!(glob("refs/heads/release-*").matches("refs/heads/release-1.2"));
        assert!(!glob("refs/heads/release-*").matches("refs/heads/release-1/evil"));
        assert!(
            glob("repo:acme/*:ref:refs/heads/main").matches("repo:acme/app:ref:refs/heads/main")
        );
        assert!(!glob("repo:acme/*:ref:refs/heads/main")
            .matches("repo:acme/app:x:y/z:ref:refs/heads/main"));
        assert!(glob("*-prod").matches("payments-prod"));
        assert!(!glob("*-prod").matches("a/b-prod"));
        assert!(glob("a*b*c").matches("aXbYc"));
        assert!(glob("a*b*c").matches("abbbc"));
        assert!(!glob("a*b*c").matches("aXbY"));
        // Whole-value match only.
        assert!(!glob("main").matches("main2"));
        assert!(!glob("main").matches("xmain"));
        // Non-ASCII is matched byte-wise but soundly.
        assert!(glob("é*").matches("éà"));
        assert!(!glob("é*").matches("eà"));
    }

    #[test]
    fn a_glob_is_bounded_and_has_no_double_star() {
        assert_eq!(Glob::parse(""), Err(ConditionError::BadGlob));
        assert_eq!(Glob::parse("a/**"), Err(ConditionError::BadGlob));
        assert!(Glob::parse(&"a".repeat(MAX_VALUE_LEN + 1)).is_err());
        // A long adversarial value is refused, not searched.
        assert!(!glob("*a*a*a*a*a*b").matches(&"a".repeat(MAX_VALUE_LEN + 1)));
        assert!(!glob("*a*a*a*a*a*b").matches(&"a".repeat(MAX_VALUE_LEN)));
    }

    #[test]
    fn the_wire_form_holds_exactly_one_test() {
        let c: ClaimCondition =
            serde_json::from_value(json!({"claim": "ref", "equals": "refs/heads/main"}))
                .expect("valid");
        assert_eq!(c.test(), &Test::Equals("refs/heads/main".into()));
        assert_eq!(
            serde_json::to_value(&c).expect("valid"),
            json!({"claim": "ref", "equals": "refs/heads/main"})
        );
        let e: ClaimCondition =
            serde_json::from_value(json!({"claim": "environment", "exists": true})).expect("valid");
        assert_eq!(e.test(), &Test::Exists);
        for bad in [
            json!({"claim": "ref"}),
            json!({"claim": "ref", "equals": "a", "prefix": "b"}),
            json!({"claim": "ref", "exists": false}),
            json!({"claim": "ref", "equals": ""}),
            json!({"claim": "ref", "one_of": []}),
            json!({"claim": "ref", "glob": "**"}),
            json!({"claim": "", "equals": "a"}),
            json!({"claim": "a b", "equals": "a"}),
            json!({"claim": "ref", "equals": "a", "negate": true}),
        ] {
            assert!(
                serde_json::from_value::<ClaimCondition>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let many: Vec<String> = (0..=MAX_ONE_OF).map(|i| i.to_string()).collect();
        assert_eq!(
            ClaimCondition::new("x", Test::OneOf(many)),
            Err(ConditionError::BadOneOf)
        );
    }
}
