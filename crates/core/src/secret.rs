//! A wrapper for secret values: Debug and Display print `[redacted]`, equality is constant-time.
//!
//! Anything that must never reach a log, an error message, an audit event or a metric label is
//! held in a [`Secret`]. Reading the value is explicit (`expose`), so reviews can grep for it.

use subtle::ConstantTimeEq;

#[derive(Clone, Default)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value. Every call site is a place where the secret leaves the wrapper.
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T: AsRef<[u8]>> PartialEq for Secret<T> {
    fn eq(&self, other: &Self) -> bool {
        constant_time_eq(self.0.as_ref(), other.0.as_ref())
    }
}

impl<T: AsRef<[u8]>> Eq for Secret<T> {}

impl<'de, T: serde::Deserialize<'de>> serde::Deserialize<'de> for Secret<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        T::deserialize(d).map(Secret)
    }
}

/// Serialises as `"[redacted]"`, so printing a config or an event can never leak the value.
impl<T> serde::Serialize for Secret<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("[redacted]")
    }
}

/// Constant-time comparison of two byte strings. Lengths are not secret here (digests and
/// fixed-format tokens have public lengths), so unequal lengths return early.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && bool::from(a.ct_eq(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_display_and_serialize_never_show_the_value() {
        let s = Secret::new("hunter2".to_string());
        assert_eq!(format!("{s:?}"), "[redacted]");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(
            serde_json::to_string(&s).expect("serialises"),
            "\"[redacted]\""
        );
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn equality_compares_content() {
        assert_eq!(Secret::new(b"abc".to_vec()), Secret::new(b"abc".to_vec()));
        assert_ne!(Secret::new(b"abc".to_vec()), Secret::new(b"abd".to_vec()));
        assert_ne!(Secret::new(b"abc".to_vec()), Secret::new(b"ab".to_vec()));
    }
}
