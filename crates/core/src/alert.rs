//! An alert's life: open when a detector first fires for a rule and subject, acknowledged when
//! an operator takes it, resolved when they close it. New findings for the same rule and subject
//! add to the open or acknowledged alert (deduplicated); after it is resolved they open a new one.
//!
//! This module holds the states and which changes are allowed; it never stores anything.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Open,
    Acknowledged,
    Resolved,
}

impl AlertStatus {
    pub const ALL: [AlertStatus; 3] = [Self::Open, Self::Acknowledged, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Acknowledged => "acknowledged",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }

    /// Whether an operator may move an alert from `self` to `to`: open to acknowledged, open or
    /// acknowledged to resolved. A resolved alert stays resolved (a new finding opens a new one).
    pub fn may_become(self, to: AlertStatus) -> bool {
        matches!(
            (self, to),
            (Self::Open, Self::Acknowledged)
                | (Self::Open, Self::Resolved)
                | (Self::Acknowledged, Self::Resolved)
        )
    }
}

impl fmt::Display for AlertStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_only_move_forward() {
        for s in AlertStatus::ALL {
            assert_eq!(AlertStatus::parse(s.as_str()), Some(s));
            assert!(!s.may_become(s));
            assert!(!AlertStatus::Resolved.may_become(s));
            assert!(!s.may_become(AlertStatus::Open));
        }
        assert_eq!(AlertStatus::parse("closed"), None);
        assert!(AlertStatus::Open.may_become(AlertStatus::Acknowledged));
        assert!(AlertStatus::Acknowledged.may_become(AlertStatus::Resolved));
    }
}
