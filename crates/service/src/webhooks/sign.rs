//! Webhook secrets and signatures, per the Standard Webhooks convention: a secret is `whsec_`
//! followed by the standard base64 of 32 random bytes (the HMAC key); a message is signed as
//! `v1,<base64 of HMAC-SHA256(key, "<webhook-id>.<webhook-timestamp>.<body>")>`.
//!
//! This module must never print a secret: it lives in a [`Secret`] from generation to use.

use aws_lc_rs::hmac;
use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use portcullis_core::secret::Secret;

/// The secret's prefix, as Standard Webhooks writes it.
pub const PREFIX: &str = "whsec_";
/// Random bytes in a new secret.
pub const SECRET_BYTES: usize = 32;

/// A new secret: `whsec_` + base64 of 32 bytes from the system's CSPRNG.
pub fn generate() -> Result<Secret<String>, aws_lc_rs::error::Unspecified> {
    let mut key = [0u8; SECRET_BYTES];
    aws_lc_rs::rand::fill(&mut key)?;
    Ok(Secret::new(format!("{PREFIX}{}", STANDARD.encode(key))))
}

/// The HMAC key a secret carries, or `None` if it is not a `whsec_` secret.
fn key_of(secret: &str) -> Option<Vec<u8>> {
    let b64 = secret.strip_prefix(PREFIX)?;
    let key = STANDARD.decode(b64).ok()?;
    (key.len() >= SECRET_BYTES).then_some(key)
}

/// The `webhook-signature` header value for one message, or `None` for a malformed secret.
pub fn signature(secret: &Secret<String>, id: &str, timestamp: i64, body: &[u8]) -> Option<String> {
    let key = hmac::Key::new(hmac::HMAC_SHA256, &key_of(secret.expose())?);
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(id.as_bytes());
    ctx.update(b".");
    ctx.update(timestamp.to_string().as_bytes());
    ctx.update(b".");
    ctx.update(body);
    Some(format!("v1,{}", STANDARD.encode(ctx.sign().as_ref())))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The example in docs/alerts.md: the secret's key is the bytes 0 to 31.
    const EXAMPLE_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const EXAMPLE_ID: &str = "msg_example";
    const EXAMPLE_TS: i64 = 1_800_000_000;
    const EXAMPLE_BODY: &[u8] = b"{\"hello\":\"world\"}";
    const EXAMPLE_SIGNATURE: &str = "v1,gLn4cL3XQkyBiP2qGN6aQLbTOov4dyo2gYoKj7ZqfMc=";

    #[test]
    fn secrets_are_prefixed_random_and_redacted() {
        let a = generate().expect("secret");
        let b = generate().expect("secret");
        assert!(a.expose().starts_with(PREFIX));
        assert_ne!(a.expose(), b.expose());
        assert_eq!(key_of(a.expose()).map(|k| k.len()), Some(SECRET_BYTES));
        assert_eq!(format!("{a:?}"), "[redacted]");
    }

    /// A fixed example, checked against an independent HMAC (the `hmac` crate) so the
    /// signature's layout, not only its self-consistency, is pinned. The docs quote it.
    #[test]
    fn signature_matches_an_independent_hmac_of_id_timestamp_body() {
        use ::hmac::{Hmac, Mac};
        let secret = Secret::new(format!("{PREFIX}{EXAMPLE_KEY}"));
        let sig = signature(&secret, EXAMPLE_ID, EXAMPLE_TS, EXAMPLE_BODY).expect("signature");
        let mut mac =
            Hmac::<sha2::Sha256>::new_from_slice(&STANDARD.decode(EXAMPLE_KEY).expect("b64"))
                .expect("key");
        mac.update(b"msg_example.1800000000.{\"hello\":\"world\"}");
        let want = format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes()));
        assert_eq!(sig, want);
        assert_eq!(sig, EXAMPLE_SIGNATURE);
        assert!(signature(&Secret::new("nope".to_owned()), "id", 1, b"").is_none());
    }
}
