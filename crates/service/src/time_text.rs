//! Timestamps as RFC 3339 text, for API answers and event bodies. Pure formatting: this module
//! must never read the clock or depend on another module of this crate.

use portcullis_core::time::Timestamp;

/// RFC 3339 text for API responses.
pub fn rfc3339(t: Timestamp) -> String {
    let ms = u64::try_from(t.as_millis()).unwrap_or(0);
    let when = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(when).to_string()
}
